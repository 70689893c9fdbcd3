
1j-
)
d:alice:bob"alice"bob(H€Ð•ÿ¼1Rbob