
Cr?
;
g:01HF7Z3KQRelease crew"alice"bob"carol(0H€Ð•ÿ¼1