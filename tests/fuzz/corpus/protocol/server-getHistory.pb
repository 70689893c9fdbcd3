
¹	’³
g:01HF7Z3KQ@
>
g:01HF7Z3KQalice"c-178Àê¡ÿ¼1@à÷§ÿ¼1HRg:01HF7Z3KQ/17X75
g:01HF7Z3KQ"alice*Meeting moved to 3pm0à÷§ÿ¼1!
g:01HF7Z3KQ"alice(€…®ÿ¼1 (0