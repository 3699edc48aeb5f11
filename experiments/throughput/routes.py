"""The routes the cost side measures, per kind of traffic: the sweep, the hold batches and the instruction count."""

# kind of traffic -> (paths in order of preference, method, query string)
KINDS = {
    "read": (("/sync/tag", "/async/tag"), "GET", "?tag=bench&delay=0&query=true"),
    "write": (("/sync/write", "/async/write"), "POST", "?key={key}&fail=false&delay=0"),
    "nodb": (("/nodb",), "GET", ""),
}
