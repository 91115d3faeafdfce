"""The generation engine as its own process, and the app's way to use one (issue 12, "Past one machine").

- ``python -m explorer.serving --model smollm2 --port 8600`` serves explorer.generation.generate (so every request
  is batched by the shared engine) behind an OpenAI-compatible HTTP API: explorer.serving.api reads requests and
  writes responses, explorer.serving.app is the async server.
- explorer.serving.remote is the client the generation lab uses when ``EXPLORER_ENGINE_URL`` names an engine (ours,
  or any OpenAI-compatible server such as vLLM or llama.cpp's): it turns the responses back into
  explorer.generation.Step objects.
- ``python -m explorer.serving.cluster --replicas n`` runs n Streamlit replicas behind HAProxy (sticky by cookie)
  with one engine process shared by all of them.

Nothing here imports streamlit.
"""
