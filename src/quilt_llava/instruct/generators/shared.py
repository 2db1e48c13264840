"""Prompt pieces used by several generators."""

from __future__ import annotations

SOURCE_NOTE = (
    "You cannot see the image. You are given what a pathologist said while showing it in a "
    "teaching video and, for some remarks, the region they pointed at with the mouse, as a box "
    "[left, top, right, bottom] in fractions of the image width and height (0,0 is the top-left "
    "corner, 1,1 the bottom-right)."
)

VOICE_RULES = (
    "Write as someone who is looking at the image itself. Turn boxes into words for position "
    "(upper left, centre, lower edge, right half, ...). Never write numbers taken from the boxes "
    "and never mention boxes, coordinates, a narration, a narrator, a speaker, a caption, a "
    "transcript, a video or 'the text'. Use only facts the narration supports; do not invent "
    "findings."
)

AI_DISCLAIMER_HINT = (
    "remind the user that you are an AI and not a doctor, and that a pathologist should confirm any diagnosis"
)
