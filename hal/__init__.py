# hal: the only package that knows which interpreter and which hardware it runs on.
# Nothing here touches hardware at import time; hal.board.build() makes the objects.
