2
d:alice:bobbob