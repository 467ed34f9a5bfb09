"""The medication knowledge base: drugs, classes and the rules over them, shipped as
cited JSON data in knowledge/data/ and loaded once into an immutable object.

`KnowledgeBase` (protocol.py) is the one interface the safety check uses; the shipped
files are its default implementation (`load_shipped()`). A hospital plugging in a
licensed source implements the same protocol (see README, "Medication safety").
"""

from knowledge.loader import DATA_DIR, KnowledgeError, load_knowledge, load_shipped
from knowledge.protocol import KnowledgeBase

__all__ = ["DATA_DIR", "KnowledgeBase", "KnowledgeError", "load_knowledge", "load_shipped"]
