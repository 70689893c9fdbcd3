p
~
R
g:nopexx
~
j
alice
~
’
d:alice:bobÿÿÿÿÿÿÿÿÿ
~
¢
d:alice:bobc