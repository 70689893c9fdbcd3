!
g:01HF7Z3KQ"alice(€…®ÿ¼1