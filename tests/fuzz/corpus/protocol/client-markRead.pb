¢
d:alice:bob*