"""The console front end: terminal input per platform (terminal picks posix or windows; keys and winconsole
decode what each reads into one set of key names), the editor and the screen."""
