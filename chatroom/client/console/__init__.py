"""The console front end: terminal input per platform (terminal, winconsole), keys, editor and screen."""
