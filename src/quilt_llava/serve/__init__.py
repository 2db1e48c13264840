"""Stage E: chat in the terminal and a Gradio web page."""
