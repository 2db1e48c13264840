"""Stage D: batched inference, VQA metrics, LLM judge and benchmark declarations.

Modules (import what you need; only ``generate`` needs torch, and only when called):

- :mod:`.questions`: benchmark question files (Quilt-VQA, LLaVA-Med/PathVQA, SLAKE,
  VQA-RAD, PMC-VQA) read into :class:`~.questions.EvalQuestion`.
- :mod:`.metrics`: the published VQA metrics, quirks included, with bootstrap CIs:
  ``score_vqa(questions, predictions) -> dict`` (x100), ``evaluate_vqa`` (+ per question),
  ``normalize_answer``.
- :mod:`.generate`: ``generate_predictions(model_dir, questions, image_dir, out_path,
  batch_size, ...)``, batched greedy and resumable.
- :mod:`.judge`: reference answers, 1-10 judging with retries, ``summarize_reviews``.
- :mod:`.sources`: benchmark files in their published layouts (Hugging Face datasets,
  CSV + image zip, LLaVA-Med JSON), images extracted once into a cache.
- :mod:`.benchmarks`: YAML declarations (``declarations/*.yaml``), ``run_benchmark``,
  ``results_table``.
- :mod:`.report`: several models' results side by side with intervals, beside the
  published rows (``published.yaml``): Markdown, CSV, rich, JSON.

CLI: ``quilt-llava eval generate | vqa | judge-questions | judge | judge-summary | run |
table | report | benchmarks``.
"""
