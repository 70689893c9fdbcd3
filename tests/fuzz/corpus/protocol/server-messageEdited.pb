75
g:01HF7Z3KQ"alice*Meeting moved to 3pm0אק§ÿ¼1