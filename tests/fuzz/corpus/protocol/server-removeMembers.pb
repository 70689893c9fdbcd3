
(‚#
g:01HF7Z3KQ"dave*alice0ÀŸºÿ¼1