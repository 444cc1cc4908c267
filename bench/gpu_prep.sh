#!/usr/bin/env bash
# Prepares the GPU check for a bare, offline device machine (CPython 3.12 with PyTorch, timm,
# OpenCV and the science stack, but none of the packages below): downloads their wheels, pinned by
# requirements.lock, unpacks them for CPython 3.12 into one xz-packed site-packages, copies a few
# clips and photos from ../shared/data, and writes DIR/go.sh, which unpacks the packages into a
# temporary folder and runs bench/gpu_check.sh on the copied media. On the device machine, one call:
#     bash bench/gpu_prep.sh          # here: writes gpu/ (ignored by git), about 40 MB
#     bash gpu/go.sh [gpu_check.sh's bench/gpu.py options]   # there (or here, CUDA rows skipped)
# Fails, before downloading anything, when the working tree that travels with DIR already passes the
# transfer limit, and again when DIR would.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-gpu}
LIMIT_MIB=${GPU_PREP_LIMIT_MIB:-63}  # what may travel (working tree + DIR): 64 MiB, less a margin
PYVER=${GPU_PREP_PYTHON:-3.12}
DATA=${GPU_PREP_DATA:-../shared/data}
CLIPS=${GPU_PREP_CLIPS:-3}
PHOTOS=${GPU_PREP_PHOTOS:-16}
# what the device machine's image lacks; the rest of requirements.lock it has, in versions that work
PACKAGES=${GPU_PREP_PACKAGES:-av facenet-pytorch librosa soundfile soxr audioread pooch decorator platformdirs
  cffi pycparser fastapi fastapi-offline opentelemetry-api starlette uvicorn python-multipart sqlalchemy greenlet alembic mako
  pydantic pydantic-core annotated-types typing-inspection jsonargparse docstring-parser typeshed-client}

# bytes that travel besides DIR: tracked files and untracked ones git does not ignore
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
limit=$((LIMIT_MIB * 1024 * 1024))
check_size() {  # $1: bytes of DIR so far
    if (( tree + $1 > limit )); then
        printf 'gpu_prep: too big to travel: working tree %d MiB + %s %d MiB > %d MiB\n' \
            $((tree >> 20)) "$DIR" $(($1 >> 20)) "$LIMIT_MIB" >&2
        exit 1
    fi
}
check_size 0

pins=()
for name in $PACKAGES; do
    pattern="^$(echo "$name" | sed 's/[-_.]/[-_.]/g')=="
    pin=$(grep -iE "$pattern" requirements.lock | head -n 1 | sed 's/ .*//') || true
    [ -n "$pin" ] || { echo "gpu_prep: $name is not pinned in requirements.lock" >&2; exit 1; }
    pins+=("$pin")
done
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$p")
done
target=(--only-binary=:all: --python-version "$PYVER" --implementation cp "${platforms[@]}")
wheels=out/gpu_wheels
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
echo "gpu_prep: ${#pins[@]} packages for CPython $PYVER -> $wheels"
python3 -m pip download -q --no-deps "${target[@]}" -d "$wheels" "${pins[@]}"
python3 -m pip install -q --no-deps --no-index --no-compile --find-links "$wheels" "${target[@]}" --target "$site/packages" "${pins[@]}"

rm -rf "$DIR"
mkdir -p "$DIR/media"
echo "gpu_prep: packing $(du -sm "$site/packages" | cut -f1) MiB of packages with xz (a minute or two)"
tar -C "$site/packages" -cf - . | xz -9 -T0 > "$DIR/site.tar.xz"
echo "$PYVER" > "$DIR/python-version"
# the smallest clips and photos: speed is per frame, and the transfer limit is tight
pick() {  # $1: how many, $2...: find's name tests
    local n=$1
    shift
    find "$DATA" -type f \( "$@" \) -printf '%s\t%p\n' 2>/dev/null | sort -n | head -n "$n" | cut -f2 |
        while read -r f; do cp "$f" "$DIR/media/$(echo "${f#"$DATA"/}" | tr '/' '_')"; done
}
pick "$CLIPS" -path '*/video/*' -name '*.mp4'
pick "$PHOTOS" -path '*/faces/*' \( -name '*.jpg' -o -name '*.png' \)
[ -n "$(ls "$DIR"/media/*.mp4 2>/dev/null)" ] || { echo "gpu_prep: no clips under $DATA/video" >&2; exit 1; }

cat > "$DIR/go.sh" <<GO
#!/usr/bin/env bash
# Written by bench/gpu_prep.sh: the GPU check on a bare machine. Unpacks the packages into a temporary
# site-packages (where the interpreter is CPython $PYVER; elsewhere it uses its own), then runs
# bench/gpu_check.sh on the copied media; the table and logs go to \${OUT:-out}/gpu_check.
set -uo pipefail
cd "\$(dirname "\$0")/.."
PY=\${PY:-\$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
have=\$("\$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export PYTHONPATH="\$PWD\${PYTHONPATH:+:\$PYTHONPATH}"
if [ "\$have" = "$PYVER" ]; then
    site=\$(mktemp -d)
    xz -dc $DIR/site.tar.xz | tar -C "\$site" -xf - || exit 1
    export PYTHONPATH="\$site:\$PYTHONPATH"
else
    echo "go.sh: the packages were packed for Python $PYVER; \$PY is \$have, so its own packages are used"
fi
# the imports first: a missing package fails here in seconds, not minutes into the check
"\$PY" -c 'import torch, uvicorn, alembic, multipart, detector.scoring.scorer, detector.models.audio, serve.api, serve.cli
print("go.sh: imports ok; torch", torch.__version__, "CUDA", torch.cuda.is_available())' || exit 1
PY="\$PY" bash bench/gpu_check.sh "\${OUT:-out}/gpu_check" --clips $DIR/media/*.mp4 --photos \$(ls $DIR/media/*.jpg $DIR/media/*.png 2>/dev/null) "\$@"
GO
size=$(du -sb "$DIR" | cut -f1)
check_size "$size"
echo "gpu_prep: $DIR is $((size >> 20)) MiB ($(ls "$DIR/media" | wc -l) media files); with the working tree $(((tree + size) >> 20)) of $LIMIT_MIB MiB"
echo "gpu_prep: run there: bash $DIR/go.sh   (device tool: carry=[\"$DIR\"])"
