j
bob