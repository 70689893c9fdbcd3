
'z#
g:01HF7Z3KQdave*alice0 ’´ÿ¼1