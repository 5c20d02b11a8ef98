# The relay benchmark (scripts/bench.py) needs Linux or macOS; here it only says so (docs/performance.md).
[Console]::Error.WriteLine('chatroom: error: the benchmark needs Linux or macOS (resource module, /proc, more than 512 sockets in one select); run scripts/bench.sh there, see docs/performance.md')
exit 2
