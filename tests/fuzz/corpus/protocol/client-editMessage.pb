Z%
g:01HF7Z3KQMeeting moved to 3pm