"""Examples shown under `podbay VERB --help`, kept apart from the verbs' parsers so every verb
gets them the same way (and a test can check that none is missing)."""
from __future__ import annotations

EXAMPLES: dict[str, str] = {
    "up": """\
  sudo podbay up                        # the server in the background; returns once it serves
  sudo podbay up --foreground           # for a service manager
  sudo podbay --api-port 0 up           # no TCP listener (default: HTTPS on 127.0.0.1:6443); the unix socket only
  sudo podbay --api-address 10.0.0.1 up   # HTTPS for agents on other machines (join token required)
  sudo podbay --api-address 10.0.0.1 --node-ip 10.0.0.1 up --embedded-etcd   # objects in an etcd of its own
  sudo podbay --runsc-network host up   # gvisor pods on the host's network stack in their own netns""",
    "join": """\
  # on another machine, the command `podbay up` printed (the token: /var/lib/podbay/node-token there)
  sudo podbay --node-ip 10.0.0.2 join --server https://10.0.0.1:6443 --token K10...::...
  sudo podbay down                      # stops the joined agent; its pods keep running""",
    "down": """\
  sudo podbay down                      # stop the server; running pods keep running
  sudo podbay down --purge              # stop it and every pod, sandbox and network it made""",
    "kubeconfig": """\
  podbay kubeconfig > ~/.kube/podbay && KUBECONFIG=~/.kube/podbay kubectl get pods""",
    "agent": """\
  podbay --node-name edge-2 --node-ip 10.0.0.2 --server http://10.0.0.1:6443 agent --token "$(cat api-token)\"""",
    "scheduler": """\
  podbay --server http://10.0.0.1:6443 scheduler --token "$(cat api-token)"
  podbay --server http://10.0.0.1:6443 scheduler --leader-elect-lease-duration 30s   # a standby waits 30s
  podbay --server http://10.0.0.1:6443 scheduler --leader-elect=false                # act at once, no lease\"""",
    "controllers": """\
  podbay --server http://10.0.0.1:6443 controllers --token "$(cat api-token)\"""",
    "apiserver": """\
  sudo podbay --etcd-servers http://10.0.0.5:2379 --api-address 10.0.0.1 apiserver
  # another machine, with the first's /var/lib/podbay/pki/ and api-token copied to its /var/lib/podbay/
  sudo podbay --etcd-servers http://10.0.0.5:2379 --api-address 10.0.0.2 apiserver
  podbay --server https://10.0.0.1:6443,https://10.0.0.2:6443 get pods   # fails over between them""",
    "apply": """\
  podbay apply -f examples/web-pod.yaml
  podbay apply -f examples/                       # every manifest in a directory
  cat pod.yaml | podbay apply -f -""",
    "get": """\
  podbay get pods
  podbay get pods -o wide -l app=web
  podbay get pod web -o yaml
  podbay get pods -A -w                           # all namespaces, then follow changes
  podbay get nodes
  podbay get events""",
    "describe": """\
  podbay describe pod web""",
    "delete": """\
  podbay delete pod web
  podbay delete -f examples/web-pod.yaml
  podbay delete pod web --grace-period 0 --force""",
    "logs": """\
  podbay logs web -c backend
  podbay logs web -c backend -f --timestamps
  podbay logs crasher --previous --tail 20""",
    "exec": """\
  podbay exec web -c frontend -- cat /var/www/index.html
  podbay exec -it web -c backend -- sh               # a terminal in the container
  echo hello | podbay exec -i web -c backend -- cat""",
    "wait": """\
  podbay wait --for=condition=Ready pod/web --timeout=60s
  podbay wait --for=delete pod/web --timeout=30s""",
    "create": """\
  podbay create -p examples/hyper-pod.json        # stored, images pulled, nothing runs (Created)
  podbay create -f examples/web-pod.yaml          # as kubectl create -f""",
    "start": """\
  podbay start hyper-web""",
    "stop": """\
  podbay stop hyper-web                           # back to Created; emptyDir files stay""",
    "rm": """\
  podbay rm hyper-web other-pod""",
    "run": """\
  podbay run -p examples/hyper-pod.json
  podbay run busybox:1.35 sh -c 'echo hello; sleep 600'
  podbay run --name hello busybox:1.35 echo hi""",
    "replace": """\
  podbay create -p new.yaml && podbay replace -o old-pod -n new-pod   # new-pod takes old-pod's IP""",
    "image": """\
  podbay image ls
  podbay image pull docker.io/library/alpine:3.19""",
    "image ls": """\
  podbay image ls""",
    "image pull": """\
  podbay image pull alpine:3.19
  podbay image pull 127.0.0.1:5000/team/app@sha256:...
  podbay image pull --auth-file ~/.docker/config.json registry.example/app:1""",
    "image import": """\
  podbay image import app.tar                     # docker save / podman save / OCI archive
  podbay image import ./oci-layout-dir""",
    "image load": """\
  podman save -o alpine.tar alpine && podbay image load alpine.tar""",
    "image build": """\
  podbay image build -t tools:1 ./rootfs-dir --cmd sh
  podbay image build -t app:1 rootfs.tar --entrypoint /app --env MODE=prod""",
    "image rm": """\
  podbay image rm tools:1""",
    "validate": """\
  podbay validate examples/web-pod.yaml           # prints the pods as the API server would store them
  podbay validate -o json --validate=false old-manifests/""",
}
