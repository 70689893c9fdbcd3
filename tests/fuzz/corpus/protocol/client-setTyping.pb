ª
d:alice:bob