"""Streamlit glue: the only place besides pages/ that imports streamlit."""
