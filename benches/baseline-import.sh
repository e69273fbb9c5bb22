#!/usr/bin/env bash
# The baseline: what teams do today without the operator, one app per run of a script.
# Clones the repository (shallow), wraps the app's export bundle as ToolJet's import endpoint
# wants it and posts it. With REPLACE=1 it first deletes the app of that name, since ToolJet's
# import is create-only (the new app gets a new id and slug).
#
# usage: baseline-import.sh <repo-url> <gitAppName> [<app name in ToolJet>]
# env:   TOOLJET_URL, TOOLJET_API_KEY, TOOLJET_WORKSPACE_ID, REPLACE=0|1
set -euo pipefail

repo=$1
git_app=$2
name=${3:-$2}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

git clone -q --depth 1 "$repo" "$work/repo"
# ToolJet's Git Sync layout: <gitAppName>/<version>.json, one version kept.
bundles=("$work/repo/$git_app"/*.json)
bundle=${bundles[0]}
[[ -f "$bundle" ]] || { echo "no bundle under $git_app/" >&2; exit 1; }

headers=(-H "tj-admin-api-key: $TOOLJET_API_KEY" -H "tj-workspace-id: $TOOLJET_WORKSPACE_ID")

if [[ "${REPLACE:-0}" == 1 ]]; then
    # searchKey is a substring match: keep exact names only.
    ids=$(curl -fsS "${headers[@]}" --get --data-urlencode "searchKey=$name" \
        --data-urlencode "type=front-end" "$TOOLJET_URL/api/apps" |
        jq -r --arg n "$name" '.apps[] | select(.name == $n) | .id')
    for id in $ids; do
        curl -fsS -o /dev/null -X DELETE "${headers[@]}" "$TOOLJET_URL/api/apps/$id"
    done
fi

jq -c --arg ws "$TOOLJET_WORKSPACE_ID" --arg name "$name" \
    '{organization_id: $ws, tooljet_version, app: [{definition: .app[0].definition, appName: $name}]}' \
    "$bundle" >"$work/body.json"
curl -fsS -o /dev/null -X POST "${headers[@]}" -H "content-type: application/json" \
    --data-binary @"$work/body.json" "$TOOLJET_URL/api/v2/resources/import"
