-B+
g:01HF7Z3KQ´"delivery queue overflow