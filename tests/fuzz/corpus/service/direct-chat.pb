pj
bob
~
R
d:alice:bobm1hi bob
~
R
d:alice:bobm1hi bob
~
bob:R
d:alice:bobb1"{"a":1}
~
Z
d:alice:bobhi Bob
~
b
d:alice:bob
~
bob:¢
d:alice:bob
~
ª
d:alice:bob
~
	’
d:alice:bob 
~

š

d:alice:bobd
~
º
~
²€Ð•ÿ¼1