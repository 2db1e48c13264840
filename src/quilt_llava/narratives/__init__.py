"""Stage A: localized narratives (stable segments, cursor traces, grounded captions) from narrated slide-viewing videos."""
