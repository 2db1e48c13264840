"""Stage E: chat in the terminal and a Gradio web page.

- :mod:`quilt_llava.serve.session`: the generation core both front ends share
  (``ChatModel``, ``ChatSession``, ``DecodingOptions``, ``LoadOptions``).
- :mod:`quilt_llava.serve.terminal`: ``quilt-llava chat`` (``run_chat``).
- :mod:`quilt_llava.serve.web`: ``quilt-llava serve`` (``build_demo``, ``serve``).
"""
