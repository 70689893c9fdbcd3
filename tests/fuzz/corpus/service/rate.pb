pª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
	ª
d:alice:bob
~

ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob
~
ª
d:alice:bob