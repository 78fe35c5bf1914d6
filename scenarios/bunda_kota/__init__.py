"""Bunda Kota demo city scenario (see README.md)."""
