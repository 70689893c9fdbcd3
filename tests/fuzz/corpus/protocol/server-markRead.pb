
¢
d:alice:bob*