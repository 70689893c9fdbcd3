
š$

d:alice:bob)

g:01HF7Z3KQd