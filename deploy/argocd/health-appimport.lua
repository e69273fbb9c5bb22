-- Argo CD health of an AppImport (gitops.tooljet.dev/v1alpha1), from its kstatus conditions.
--   Suspended:   spec.suspend is true
--   Progressing: status not written yet or stale (observedGeneration < generation), or a
--                failure the operator retries by itself (Reconciling=True, retryable reasons)
--   Degraded:    Stalled=True, or Ready=False with a reason retrying cannot fix
--   Healthy:     Ready=True
-- Install: paste into argocd-cm as in argocd-cm.yaml.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: the operator does not reconcile this AppImport"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

-- Reasons of failures that the operator retries with backoff (no user action needed).
local retryable = {
  GitUnavailable = true,
  GitError = true,
  ToolJetUnavailable = true,
  StateNotSaved = true,
  SecretUnreadable = true,
  InstancesNotListed = true,
}

local ready, stalled, reconciling, update
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Stalled" then
    stalled = c
  elseif c.type == "Reconciling" then
    reconciling = c
  elseif c.type == "UpdateAvailable" then
    update = c
  end
end

local function describe(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  if update ~= nil and update.status == "True" then
    hs.message = hs.message .. " (update available: " .. describe(update) .. ")"
  end
  return hs
end

if ready ~= nil and ready.status == "False" then
  local retrying = reconciling ~= nil and reconciling.status == "True"
  if not retrying and not retryable[ready.reason or ""] then
    hs.status = "Degraded"
  end
  hs.message = describe(ready)
  return hs
end

if ready ~= nil then
  hs.message = describe(ready)
end
return hs
