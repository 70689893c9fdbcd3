`
^
d:alice:bob*alice"$5f0c2a8e-1b7d-4e4c-9a51-0c6a1f3e2b77*Hi Bob!8ûÐ•ÿ¼1Rd:alice:bob/42X*