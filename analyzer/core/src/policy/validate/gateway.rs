//! `gateway`: what moves traffic — exactly one router; the HAProxy, NGINX and command ones here,
//! the Kubernetes ones in [`kubernetes`](super::kubernetes).

use super::*;

impl Validator {
    pub(super) fn gateway(&mut self, raw: &RawGateway) -> Option<GatewaySpec> {
        let set = [
            raw.haproxy.is_some(),
            raw.nginx.is_some(),
            raw.command.is_some(),
            raw.http_route.is_some(),
            raw.nginx_ingress.is_some(),
            raw.istio_virtual_service.is_some(),
            raw.smi_traffic_split.is_some(),
            raw.traefik_service.is_some(),
            raw.replica_count.is_some(),
        ];
        if set.iter().filter(|&&s| s).count() != 1 {
            self.problem::<()>(
                "gateway",
                None,
                "expected exactly one of `haproxy`, `nginx`, `command`, `http-route`, \
                 `nginx-ingress`, `istio-virtual-service`, `smi-traffic-split`, `traefik-service` or \
                 `replica-count`",
            );
            return None;
        }
        if let Some(spec) = self.kubernetes_gateway(raw) {
            return spec;
        }
        if let Some(haproxy) = &raw.haproxy {
            let socket = haproxy.socket.value.trim();
            let socket = if let Some(path) = socket.strip_prefix("unix:") {
                SocketAddress::Unix(PathBuf::from(path))
            } else if socket.starts_with('/') || socket.starts_with('.') {
                SocketAddress::Unix(PathBuf::from(socket))
            } else if socket
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            {
                SocketAddress::Tcp(socket.trim_start_matches("tcp:").to_owned())
            } else {
                self.problem(
                    "gateway.haproxy.socket",
                    Some(&haproxy.socket),
                    format!("expected a unix socket path (/run/haproxy/admin.sock) or host:port, not {socket:?}"),
                );
                return None;
            };
            let mut ok = true;
            for (field, name) in [
                ("backend", &haproxy.backend),
                ("canary-server", &haproxy.canary_server),
                ("stable-server", &haproxy.stable_server),
            ] {
                // These go into runtime API commands: no spaces, slashes or separators.
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
                {
                    self.problem::<()>(
                        format!("gateway.haproxy.{field}"),
                        None,
                        format!("expected an HAProxy name of letters, digits, `-`, `_`, `.` and `:`, not {name:?}"),
                    );
                    ok = false;
                }
            }
            if haproxy.canary_server == haproxy.stable_server {
                self.problem::<()>(
                    "gateway.haproxy.stable-server",
                    None,
                    "the canary and stable servers must differ",
                );
                ok = false;
            }
            let route_acl = match &haproxy.route_acl {
                Some(raw) => match self.haproxy_route_acl(raw) {
                    Some(acl) => Some(acl),
                    None => {
                        ok = false;
                        None
                    }
                },
                None => None,
            };
            return ok.then(|| {
                GatewaySpec::Haproxy(HaproxySpec {
                    socket,
                    backend: haproxy.backend.clone(),
                    canary_server: haproxy.canary_server.clone(),
                    stable_server: haproxy.stable_server.clone(),
                    route_acl,
                })
            });
        }
        if let Some(nginx) = &raw.nginx {
            let mut ok = true;
            if nginx.upstream.is_empty()
                || !nginx
                    .upstream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                self.problem::<()>(
                    "gateway.nginx.upstream",
                    None,
                    format!(
                        "expected an upstream name of letters, digits, `-`, `_` and `.`, not {:?}",
                        nginx.upstream
                    ),
                );
                ok = false;
            }
            for (field, address) in [("canary", &nginx.canary), ("stable", &nginx.stable)] {
                // These are written into an NGINX config file: nothing that could end a directive.
                if address.is_empty()
                    || address.chars().any(|c| {
                        c.is_whitespace() || matches!(c, ';' | '{' | '}' | '#' | '"' | '\'')
                    })
                {
                    self.problem::<()>(
                        format!("gateway.nginx.{field}"),
                        None,
                        format!("expected a server address like 10.0.0.5:8080, not {address:?}"),
                    );
                    ok = false;
                }
            }
            if nginx.upstream_file.is_empty() {
                self.problem::<()>("gateway.nginx.upstream-file", None, "expected a file path");
                ok = false;
            }
            let reload = match &nginx.reload {
                None => vec!["nginx".to_owned(), "-s".to_owned(), "reload".to_owned()],
                Some(at) if at.value.is_empty() => {
                    self.problem(
                        "gateway.nginx.reload",
                        Some(at),
                        "expected a command and its arguments",
                    );
                    return None;
                }
                Some(at) => at.value.clone(),
            };
            let weight_probe = match &nginx.weight_probe {
                None => None,
                Some(text) => match text.parse::<std::net::SocketAddr>() {
                    Ok(address) => Some(address),
                    Err(_) => {
                        self.problem::<()>(
                            "gateway.nginx.weight-probe",
                            None,
                            format!(
                                "expected an address NGINX listens on for the weight probe, \
                                 like 127.0.0.1:9181, not {text:?}"
                            ),
                        );
                        ok = false;
                        None
                    }
                },
            };
            let timeout = self.positive_duration(
                "gateway.nginx.timeout",
                nginx.timeout.as_ref(),
                DEFAULT_COMMAND_TIMEOUT,
            )?;
            return ok.then(|| {
                GatewaySpec::Nginx(NginxSpec {
                    upstream_file: PathBuf::from(&nginx.upstream_file),
                    upstream: nginx.upstream.clone(),
                    canary: nginx.canary.clone(),
                    stable: nginx.stable.clone(),
                    reload,
                    timeout,
                    weight_probe,
                })
            });
        }
        let command = raw.command.as_ref()?;
        let mut ok = true;
        if command.set.value.is_empty() {
            self.problem(
                "gateway.command.set",
                Some(&command.set),
                "expected a command and its arguments",
            );
            ok = false;
        }
        ok &= self.placeholders(
            "gateway.command.set",
            &command.set,
            &["weight", "stable-weight"],
        );
        if let Some(get) = &command.get
            && get.value.is_empty()
        {
            self.problem(
                "gateway.command.get",
                Some(get),
                "expected a command and its arguments",
            );
            ok = false;
        }
        let timeout = self.positive_duration(
            "gateway.command.timeout",
            command.timeout.as_ref(),
            DEFAULT_COMMAND_TIMEOUT,
        )?;
        ok.then(|| {
            GatewaySpec::Command(CommandRouterSpec {
                set: command.set.value.clone(),
                get: command.get.as_ref().map(|g| g.value.clone()),
                timeout,
            })
        })
    }
}

impl Validator {
    /// `gateway.haproxy.route-acl`: a file name the runtime API takes as one word, and
    /// exactly one of `header` or `cookie`, each a name a request can carry.
    fn haproxy_route_acl(&mut self, raw: &RawHaproxyRouteAcl) -> Option<HaproxyRouteAcl> {
        let mut ok = true;
        // The name goes into runtime API commands (`add acl FILE VALUE`): one word, with
        // none of the characters the runtime API's command line gives a meaning to.
        if raw.file.is_empty()
            || raw
                .file
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '\\' | '#'))
        {
            self.problem::<()>(
                "gateway.haproxy.route-acl.file",
                None,
                format!(
                    "expected the ACL file as haproxy.cfg names it after `-f` (no spaces, `;`, `\\` or `#`), not {:?}",
                    raw.file
                ),
            );
            ok = false;
        }
        let reads = match (&raw.header, &raw.cookie) {
            (Some(header), None) => {
                if header.is_empty()
                    || !header
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    self.problem::<()>(
                        "gateway.haproxy.route-acl.header",
                        None,
                        format!(
                            "{header:?} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
                        ),
                    );
                    ok = false;
                }
                AclReads::Header(header.clone())
            }
            (None, Some(cookie)) => {
                if cookie.is_empty()
                    || !cookie
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
                {
                    self.problem::<()>(
                        "gateway.haproxy.route-acl.cookie",
                        None,
                        format!("{cookie:?} is not a cookie name"),
                    );
                    ok = false;
                }
                AclReads::Cookie(cookie.clone())
            }
            _ => {
                self.problem::<()>(
                    "gateway.haproxy.route-acl",
                    None,
                    "expected exactly one of `header` (the request header the ACL reads) or `cookie` (the cookie it reads)",
                );
                return None;
            }
        };
        ok.then(|| HaproxyRouteAcl {
            file: raw.file.clone(),
            reads,
        })
    }
}
