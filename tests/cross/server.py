"""Cross-language smoke server (Python). Usage: server.py CERT KEY"""
import sys

import rpcnet

server = rpcnet.Server(cert_file=sys.argv[1], key_file=sys.argv[2])


@server.method("echo")
def echo(req, ctx):
    return req


@server.method("add")
def add(req, ctx):
    return {"sum": req["a"] + req["b"]}


print("PORT", server.listen("127.0.0.1:0"), flush=True)
server.serve(workers=2)
