
£º
]
d:alice:bob(0+8*@H€Ğ•ÿ¼1RbobZ8
d:alice:bob+bob"b-7*Hey!8 ÇÌÿ¼1Rd:alice:bob/43X+
*
g:01HF7Z3KQRelease crew(08H€Ğ•ÿ¼1c1:g:01HF7Z3KQ