‚
g:01HF7Z3KQdave