"""A tiny Gradio text demo: the default app of the `gradio-demo` image template.

`predict` below is a PLACEHOLDER for your model: it reverses the text and counts words, so the template can be
deployed and checked end to end without model weights. Replace it (and add your packages to requirements.txt)
to serve a real model. Settings come from the environment (see template.yaml):

  MODEL_NAME         shown in the answers and the page title
  DEMO_TITLE         page title
  DEMO_DESCRIPTION   text under the title
  MAX_INPUT_CHARS    longest accepted input
  GRADIO_SERVER_NAME / GRADIO_SERVER_PORT   listen address (0.0.0.0:7860 in the image)
"""

from __future__ import annotations

import os
import sys

import gradio as gr


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"app.py: environment variable {name}={raw!r} is not an integer")
    if value < minimum:
        sys.exit(f"app.py: environment variable {name}={value} must be at least {minimum}")
    return value


MODEL_NAME = os.environ.get("MODEL_NAME", "").strip() or "echo"
DEMO_TITLE = os.environ.get("DEMO_TITLE", "").strip() or f"{MODEL_NAME} demo"
DEMO_DESCRIPTION = os.environ.get("DEMO_DESCRIPTION", "").strip() or (
    "Placeholder model: it reverses your text and counts its words. Replace predict() in app.py with your model."
)
MAX_INPUT_CHARS = _env_int("MAX_INPUT_CHARS", 2000)
SERVER_NAME = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
SERVER_PORT = _env_int("GRADIO_SERVER_PORT", 7860)


def predict(text: str) -> str:
    """PLACEHOLDER model. Replace the body with a call to your model; keep the signature (text in, text out)."""
    text = (text or "").strip()
    if not text:
        return "Type some text first."
    if len(text) > MAX_INPUT_CHARS:
        raise gr.Error(f"The input has {len(text)} characters; the limit is {MAX_INPUT_CHARS}.")
    words = len(text.split())
    return f"[{MODEL_NAME}] {text[::-1]}\n({words} words, {len(text)} characters)"


demo = gr.Interface(
    fn=predict,
    inputs=gr.Textbox(label="Input", lines=3, placeholder="Type a sentence"),
    outputs=gr.Textbox(label="Output"),
    title=DEMO_TITLE,
    description=DEMO_DESCRIPTION,
    examples=[["Hello from the edge"]],
    cache_examples=False,
    flagging_mode="never",
)


if __name__ == "__main__":
    # GET / answers 200 once the server is up: the template's health_check_path.
    demo.queue(default_concurrency_limit=4).launch(
        server_name=SERVER_NAME,
        server_port=SERVER_PORT,
        show_error=True,
    )
