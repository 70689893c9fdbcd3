*
d:alice:bobbob* ž–ÿ¼1