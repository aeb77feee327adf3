"""nas.search (filled by later issues)."""
