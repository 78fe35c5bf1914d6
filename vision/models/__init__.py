"""The shipped detector (see MODEL_CARD.md)."""
