"""The console client: app (select loop, login, CLI), keys, terminal, editor, screen."""
