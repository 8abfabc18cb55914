"""Creates the keys k1..kN of the key-service benchmark over keep-alive HTTP connections, one
thread per connection, each with its own range of names; prints the rate. Usage:
    kms_create_keys.py URL TOKEN N [CONNECTIONS]"""
import http.client
import sys
import threading
import time
import urllib.parse

url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
conns = int(sys.argv[4]) if len(sys.argv) > 4 else 8
u = urllib.parse.urlparse(url)
headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
failed = []


def work(first, last):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    for i in range(first, last + 1):
        c.request("POST", "/api/v1/kms/keys", body=f'{{"name":"k{i}"}}', headers=headers)
        r = c.getresponse()
        r.read()
        # 409: made by an earlier run on the same database.
        if r.status not in (201, 409):
            failed.append((i, r.status))
            return


start = time.time()
per = (n + conns - 1) // conns
threads = [threading.Thread(target=work, args=(t * per + 1, min(n, (t + 1) * per))) for t in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
took = time.time() - start
if failed:
    sys.exit(f"key creation failed: {failed[:5]}")
print(f"created {n} keys in {took:.1f} s ({n / took:.0f} keys/s)", file=sys.stderr)
