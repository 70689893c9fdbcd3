
)Š$
g:01HF7Z3KQ"carol*carol0à¬Àÿ¼1