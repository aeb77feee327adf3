"""nas.data (filled by later issues)."""
