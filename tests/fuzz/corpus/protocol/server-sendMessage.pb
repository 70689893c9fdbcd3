
*R&
d:alice:bob*d:alice:bob/42 ûÐ•ÿ¼1