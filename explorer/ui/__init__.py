"""Streamlit glue: the only place besides labs/ that imports streamlit."""
