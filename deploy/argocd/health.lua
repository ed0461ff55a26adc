-- Argo CD health of lmi.dev CapacityProvider and SimilarityFunction (one script for both).
-- Healthy: Ready=True for the current generation. Degraded: a condition of the current
-- generation is False for a reason that needs a human. Progressing: anything else (the operator
-- has not caught up with the spec yet, AWS is provisioning, a transient error is being retried,
-- the object is being deleted). Lua 5.1, as Argo CD runs it.
local hs = {}

-- Reasons that do not go away without a change to the spec, the AWS account, the network or
-- the image (a missing handler build), or a human acting on drift left by driftPolicy Report.
local terminal = {
  AwsFailed = true,
  InvalidSpec = true,
  AccessDenied = true,
  NameConflict = true,
  NetworkNotFound = true,
  MultipleVpcs = true,
  PublicSubnet = true,
  InstanceTypeUnavailable = true,
  NamespaceNotAllowed = true,
  RoleNotAllowed = true,
  CodeSourceNotAllowed = true,
  CatalogSourceNotAllowed = true,
  FunctionNameNotAllowed = true,
  TenantLimitExceeded = true,
  InvalidRequest = true,
  LimitExceeded = true,
  AwsError = true,
  HandlerBuildUnavailable = true,
  KubeRequestRejected = true,
  DriftDetected = true,
  -- The provider's function versions are spent (AWS allows 100, not adjustable).
  VersionBudgetExceeded = true,
  VersionLimitExceeded = true,
  -- A published version AWS could not start (its StateReasonCode): the previous version keeps
  -- serving, and a human should look at why.
  EniLimitExceeded = true,
  InsufficientRolePermissions = true,
  InvalidConfiguration = true,
  InternalError = true,
  SubnetOutOfIPAddresses = true,
  InvalidSubnet = true,
  InvalidSecurityGroup = true,
  KMSKeyAccessDenied = true,
  KMSKeyNotFound = true,
  InvalidStateKMSKey = true,
  DisabledKMSKey = true,
  InvalidRuntime = true,
  InvalidZipFileException = true,
  FunctionError = true,
  ServiceQuotaExceededException = true,
  VcpuLimitExceeded = true,
  CapacityProviderScalingLimitExceeded = true,
  InsufficientCapacity = true,
  EC2RequestLimitExceeded = true,
  FunctionError_InitTimeout = true,
  FunctionError_RuntimeInitError = true,
  FunctionError_InvalidEntryPoint = true,
  FunctionError_PermissionDenied = true,
  FunctionError_InitResourceExhausted = true,
  DisallowedByVpcEncryptionControl = true,
  DependencyError = true,
  VersionFailed = true,
}

local generation = obj.metadata and obj.metadata.generation
local status = obj.status
local conditions = {}
if status ~= nil and status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type ~= nil then
      conditions[c.type] = c
    end
  end
end

-- A condition written for the current spec (no generation to compare counts as current).
local function current(c)
  return generation == nil or c.observedGeneration == nil or c.observedGeneration >= generation
end

local function describe(c)
  local text = c.type .. "=" .. tostring(c.status)
  if c.reason ~= nil then
    text = text .. " (" .. c.reason .. ")"
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  local blocked = conditions["DeletionBlocked"]
  if blocked ~= nil and blocked.status == "True" then
    hs.message = "Deleting, blocked: " .. describe(blocked)
  else
    hs.message = "Deleting"
  end
  return hs
end

if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

-- A terminal problem of the current generation, in the order a human should read them.
for _, t in ipairs({ "Synced", "Ready", "NetworkReady", "InstanceTypesAvailable", "CapacityProviderReady" }) do
  local c = conditions[t]
  if c ~= nil and c.status == "False" and current(c) and c.reason ~= nil and terminal[c.reason] then
    hs.status = "Degraded"
    hs.message = describe(c)
    return hs
  end
end

-- Conditions of an earlier generation say nothing about the current spec.
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to apply generation " .. generation
  return hs
end

local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" and current(ready) then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  -- Warnings that do not stop the resource from working: drift (reported, or being
  -- corrected) and telemetry egress.
  local drifted = conditions["Drifted"]
  if drifted ~= nil and drifted.status == "True" then
    hs.message = hs.message .. "; " .. describe(drifted)
  end
  local network = conditions["NetworkReady"]
  if network ~= nil and network.status == "False" then
    hs.message = hs.message .. "; " .. describe(network)
  end
  return hs
end

hs.status = "Progressing"
if ready ~= nil and current(ready) then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the operator to report readiness for the current generation"
end
local synced = conditions["Synced"]
if synced ~= nil and synced.status == "False" and current(synced) then
  hs.message = hs.message .. "; retrying: " .. describe(synced)
end
return hs
