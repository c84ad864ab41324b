#!/usr/bin/env bash
# Expose the PillSnap API through a Cloudflare Tunnel (no open inbound port needed).
#
#   scripts/tunnel.sh quick [--port 8000]
#       development: a throwaway https://<random>.trycloudflare.com URL for the local API
#   scripts/tunnel.sh named [--name pillsnap] [--hostname api.pillsnap.co.kr] [--port 8000]
#       production: create (once) the named tunnel, route the hostname's DNS to it, write
#       ~/.cloudflared/config.yml; needs `cloudflared tunnel login` done once before
#   scripts/tunnel.sh config --tunnel-id ID --credentials FILE [--hostname H] [--port P]
#       print the config.yml the named tunnel uses (nothing else is touched)
#   scripts/tunnel.sh service
#       install the named tunnel as a system service (sudo; systemd), then its status
#
# The API behind a public hostname must run with an API key (API_KEY in .env) and with
# that hostname's web origin in CORS_ALLOW_ORIGINS (e.g. https://pillsnap.co.kr).
# Logs: `journalctl -u cloudflared -f` for the service; the quick tunnel logs to the console.
set -euo pipefail

need_cloudflared() {
  if ! command -v cloudflared >/dev/null 2>&1; then
    cat >&2 <<'EOF'
cloudflared is not installed. On Debian/Ubuntu (and WSL2):
  curl -L https://github.com/cloudflare/cloudflared/releases/latest/download/cloudflared-linux-amd64.deb -o /tmp/cloudflared.deb
  sudo dpkg -i /tmp/cloudflared.deb
or add Cloudflare's apt repository (https://pkg.cloudflare.com/). Then run this script again.
EOF
    exit 127
  fi
}

command="${1:-}"
[ -n "$command" ] && shift
name=pillsnap hostname=api.pillsnap.co.kr port=8000 tunnel_id="" credentials=""
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --hostname) hostname="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --tunnel-id) tunnel_id="$2"; shift 2 ;;
    --credentials) credentials="$2"; shift 2 ;;
    *) echo "unknown option: $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done

config_yml() {
  # One hostname to the local API; everything else gets 404 at Cloudflare's edge.
  cat <<EOF
tunnel: $1
credentials-file: $2
ingress:
  - hostname: $hostname
    service: http://localhost:$port
    originRequest:
      connectTimeout: 10s
  - service: http_status:404
EOF
}

case "$command" in
  quick)
    need_cloudflared
    echo "[tunnel] quick tunnel to http://localhost:$port (the URL appears below)"
    exec cloudflared tunnel --url "http://localhost:$port"
    ;;
  named)
    need_cloudflared
    if [ ! -f "$HOME/.cloudflared/cert.pem" ]; then
      echo "[tunnel] run 'cloudflared tunnel login' once first (it opens a browser)" >&2
      exit 2
    fi
    tunnel_id_of() {  # the id of the tunnel called $name, empty when there is none
      cloudflared tunnel list --output json --name "$name" |
        python3 -c 'import json,sys; t=json.load(sys.stdin) or [{}]; print(t[0].get("id",""))'
    }
    tunnel_id="$(tunnel_id_of)"
    if [ -z "$tunnel_id" ]; then
      cloudflared tunnel create "$name"
      tunnel_id="$(tunnel_id_of)"
    fi
    cloudflared tunnel route dns "$name" "$hostname"
    config_yml "$tunnel_id" "$HOME/.cloudflared/$tunnel_id.json" > "$HOME/.cloudflared/config.yml"
    echo "[tunnel] $hostname -> http://localhost:$port via tunnel $name ($tunnel_id)"
    echo "[tunnel] run it now: cloudflared tunnel run $name   or as a service: $0 service"
    ;;
  config)
    if [ -z "$tunnel_id" ] || [ -z "$credentials" ]; then
      echo "config needs --tunnel-id and --credentials" >&2
      exit 2
    fi
    config_yml "$tunnel_id" "$credentials"
    ;;
  service)
    need_cloudflared
    sudo cloudflared service install
    systemctl status cloudflared --no-pager || true
    ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    [ -z "$command" ] && exit 0
    echo "unknown command: $command" >&2
    exit 2
    ;;
esac
