/*
 * Edgefleet console: a dependency-free single-page app with hash routing (#/overview, #/demos/<id>, ...).
 *
 * Served same-origin under a strict CSP (script-src 'self'; style-src 'self'): no inline scripts, styles or
 * handlers. Server text is only ever put into the page with textContent (the h() helper), never innerHTML.
 * Every state-changing request carries the session's CSRF token; a 401 anywhere shows the sign-in form and
 * returns to the same hash afterwards.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------------------------
  // i18n: one table of [English, Simplified Chinese] pairs, split into MESSAGES.en / MESSAGES.zh.
  // ---------------------------------------------------------------------------------------------------------
  const TEXT = {
    'app.name': ['Edgefleet', 'Edgefleet'],
    'app.tagline': ['Control plane', '控制平面'],
    'nav.group.infra': ['Infrastructure', '基础设施'],
    'nav.group.workloads': ['Workloads', '工作负载'],
    'nav.group.ops': ['Operations', '运维'],
    'nav.group.admin': ['Administration', '系统管理'],
    'nav.overview': ['Overview', '概览'],
    'nav.clouds': ['Clouds', '云账号'],
    'nav.regions': ['Regions', '地域'],
    'nav.clusters': ['Clusters', '集群'],
    'nav.templates': ['Templates', '模板'],
    'nav.demos': ['Demos', '演示应用'],
    'nav.tasks': ['Tasks', '任务'],
    'nav.logs': ['Logs', '日志'],
    'nav.users': ['Users', '用户'],
    'nav.tokens': ['API tokens', 'API 令牌'],
    'nav.audit': ['Audit', '审计日志'],
    'top.signout': ['Sign out', '退出登录'],
    'top.language': ['Language', '语言'],
    'role.viewer': ['viewer', '只读'],
    'role.operator': ['operator', '运维'],
    'role.admin': ['admin', '管理员'],

    'login.title': ['Sign in', '登录'],
    'login.subtitle': ['Hybrid-cloud Kubernetes fleet and one-click ML demos', '混合云 Kubernetes 集群与一键 ML 演示部署'],
    'login.username': ['Username', '用户名'],
    'login.password': ['Password', '密码'],
    'login.submit': ['Sign in', '登录'],
    'login.expired': ['Your session has ended. Please sign in again.', '会话已结束，请重新登录。'],

    'common.loading': ['Loading…', '加载中…'],
    'common.retry': ['Retry', '重试'],
    'common.refresh': ['Refresh', '刷新'],
    'common.cancel': ['Cancel', '取消'],
    'common.confirm': ['Confirm', '确认'],
    'common.delete': ['Delete', '删除'],
    'common.create': ['Create', '创建'],
    'common.search': ['Search', '搜索'],
    'common.reset': ['Reset', '重置'],
    'common.close': ['Close', '关闭'],
    'common.copy': ['Copy', '复制'],
    'common.copied': ['Copied', '已复制'],
    'common.none': ['—', '—'],
    'common.yes': ['yes', '是'],
    'common.no': ['no', '否'],
    'common.empty': ['Nothing here yet.', '暂无数据。'],
    'common.prev': ['Previous', '上一页'],
    'common.next': ['Next', '下一页'],
    'common.range': ['{from}–{to}', '第 {from}–{to} 条'],
    'common.rangeTotal': ['{from}–{to} of {total}', '第 {from}–{to} 条，共 {total} 条'],
    'common.actions': ['Actions', '操作'],
    'common.name': ['Name', '名称'],
    'common.status': ['Status', '状态'],
    'common.created': ['Created', '创建时间'],
    'common.updated': ['Updated', '更新时间'],
    'common.role': ['Role', '角色'],
    'common.region': ['Region', '地域'],
    'common.cluster': ['Cluster', '集群'],
    'common.optional': ['optional', '可选'],
    'common.all': ['All', '全部'],
    'common.details': ['Details', '详情'],
    'common.back': ['Back', '返回'],
    'common.message': ['Message', '消息'],
    'common.time': ['Time', '时间'],
    'common.level': ['Level', '级别'],
    'common.text': ['Text', '文本'],
    'common.since': ['From', '开始时间'],
    'common.until': ['To', '结束时间'],

    'err.network': ['Cannot reach the control plane. Check your connection and retry.', '无法连接控制平面，请检查网络后重试。'],
    'err.http': ['The request failed (HTTP {status}).', '请求失败（HTTP {status}）。'],
    'err.fields': ['Please correct the marked fields.', '请修正标出的字段。'],
    'err.forbiddenPage': ['This page needs the {role} role.', '此页面需要「{role}」角色。'],
    'err.notFound': ['There is no such page.', '页面不存在。'],
    'err.stream': ['The live stream was interrupted; reconnecting…', '实时连接中断，正在重连…'],

    'rel.now': ['just now', '刚刚'],
    'rel.s': ['{n} s ago', '{n} 秒前'],
    'rel.m': ['{n} min ago', '{n} 分钟前'],
    'rel.h': ['{n} h ago', '{n} 小时前'],
    'rel.d': ['{n} d ago', '{n} 天前'],
    'rel.in.s': ['in {n} s', '{n} 秒后'],
    'rel.in.m': ['in {n} min', '{n} 分钟后'],
    'rel.in.h': ['in {n} h', '{n} 小时后'],
    'rel.in.d': ['in {n} d', '{n} 天后'],

    'status.ready': ['ready', '就绪'],
    'status.online': ['online', '在线'],
    'status.succeeded': ['succeeded', '成功'],
    'status.pending': ['pending', '等待中'],
    'status.running': ['running', '运行中'],
    'status.leased': ['leased', '已领取'],
    'status.developing': ['developing', '部署中'],
    'status.bootstrapping': ['bootstrapping', '引导中'],
    'status.provisioning': ['provisioning', '创建中'],
    'status.registered': ['registered', '已登记'],
    'status.planned': ['planned', '已规划'],
    'status.destroying': ['destroying', '销毁中'],
    'status.failed': ['failed', '失败'],
    'status.degraded': ['degraded', '降级'],
    'status.offline': ['offline', '离线'],
    'status.closed': ['closed', '已关闭'],
    'status.deleted': ['deleted', '已删除'],
    'status.cancelled': ['cancelled', '已取消'],
    'status.in_sync': ['in sync', '无漂移'],
    'status.drifted': ['drifted', '有漂移'],
    'status.unknown': ['unknown', '未知'],
    'status.connected': ['connected', '已连接'],
    'status.disconnected': ['disconnected', '未连接'],
    'status.enabled': ['enabled', '已启用'],
    'status.disabled': ['disabled', '已停用'],
    'status.active': ['active', '有效'],
    'status.revoked': ['revoked', '已吊销'],
    'status.expired': ['expired', '已过期'],
    'status.applied': ['applied', '已应用'],
    'status.unchanged': ['unchanged', '未变化'],
    'status.not_ready': ['not ready', '未就绪'],
    'status.manual': ['manual', '手动登记'],
    'status.terraform': ['Terraform', 'Terraform'],
    'level.debug': ['debug', '调试'],
    'level.info': ['info', '信息'],
    'level.warn': ['warn', '警告'],
    'level.error': ['error', '错误'],

    'step.ensure_cluster': ['Ensure cluster', '准备集群'],
    'step.ensure_agent': ['Ensure agent', '确认代理在线'],
    'step.render': ['Render objects', '渲染对象'],
    'step.apply': ['Apply objects', '应用对象'],
    'step.wait_ready': ['Wait until ready', '等待就绪'],
    'step.publish_url': ['Publish URL', '发布访问地址'],
    'step.prune': ['Prune objects', '清理对象'],
    'step.close': ['Close', '关闭'],
    'step.attempt': ['attempt {n}', '第 {n} 次尝试'],

    'confirm.typeName': ['Type {name} to confirm.', '输入 {name} 以确认。'],
    'secret.once': ['Copy it now: it is shown only once and cannot be retrieved later.', '请立即复制：它只显示这一次，之后无法再次查看。'],

    'overview.regions': ['Regions and clusters', '地域与集群'],
    'overview.recentDemos': ['Recent demos', '最近的演示应用'],
    'overview.failedTasks': ['Failed tasks', '失败的任务'],
    'overview.noClusters': ['No cluster in this region yet.', '该地域还没有集群。'],
    'overview.noRegions': ['No regions yet. An admin adds clouds and regions first.', '还没有地域，请管理员先添加云账号和地域。'],
    'overview.noFailed': ['No failed tasks.', '没有失败的任务。'],
    'overview.stat.regions': ['Regions enabled', '已启用地域'],
    'overview.stat.clusters': ['Clusters ready', '就绪集群'],
    'overview.stat.agents': ['Agents connected', '在线代理'],
    'overview.stat.demos': ['Demos online', '在线演示'],
    'overview.stat.failed': ['Recent failed tasks', '近期失败任务'],
    'overview.other': ['Other clusters', '其他集群'],

    'clouds.list': ['Cloud accounts', '云账号列表'],
    'clouds.register': ['Register a cloud account', '登记云账号'],
    'clouds.provider': ['Provider', '云厂商'],
    'clouds.credentials': ['Credential fields', '凭据字段'],
    'clouds.regionCount': ['Regions', '地域数'],
    'clouds.credHint': ['Credentials are write-only: they are encrypted at rest and never shown again.', '凭据只写不读：加密保存，之后不会再显示。'],
    'clouds.noCreds': ['This provider needs no credentials.', '该类型不需要凭据。'],
    'clouds.deleteTitle': ['Delete cloud account {name}?', '删除云账号 {name}？'],
    'clouds.deleteBody': ['This is refused while regions still use the account.', '仍有地域使用该账号时，删除会被拒绝。'],
    'clouds.created': ['Cloud account {name} registered.', '已登记云账号 {name}。'],
    'clouds.edit': ['Edit', '编辑'],
    'clouds.editTitle': ['Edit {name}', '编辑 {name}'],
    'clouds.rotateHint': ['Leave the credentials empty to keep the current ones; filling them in replaces all of them.', '凭据留空则保持不变；填写后将全部替换。'],
    'clouds.updated': ['Cloud account {name} saved.', '已保存云账号 {name}。'],
    'common.save': ['Save', '保存'],
    'clouds.deleted': ['Cloud account {name} deleted.', '已删除云账号 {name}。'],
    'provider.tencentcloud': ['Tencent Cloud', '腾讯云'],
    'provider.aws': ['AWS', 'AWS'],
    'provider.local': ['Local (kind)', '本地 (kind)'],
    'provider.existing': ['Existing cluster', '已有集群'],
    'cred.secret_id': ['SecretId', 'SecretId'],
    'cred.secret_key': ['SecretKey', 'SecretKey'],
    'cred.access_key_id': ['Access key ID', 'Access key ID'],
    'cred.secret_access_key': ['Secret access key', 'Secret access key'],
    'cred.session_token': ['Session token', 'Session token'],

    'regions.list': ['Regions', '地域列表'],
    'regions.add': ['Add a region', '添加地域'],
    'regions.cloud': ['Cloud account', '云账号'],
    'regions.code': ['Code', '代码'],
    'regions.displayName': ['Display name', '显示名称'],
    'regions.enabled': ['Enabled (takes new demos)', '启用（接收新的演示部署）'],
    'regions.clusters': ['Clusters', '集群数'],
    'regions.enable': ['Enable', '启用'],
    'regions.disable': ['Disable', '停用'],
    'regions.noClouds': ['Register a cloud account first.', '请先登记云账号。'],
    'regions.created': ['Region {name} added.', '已添加地域 {name}。'],
    'regions.toggled': ['Region {name} is now {state}.', '地域 {name} 现在{state}。'],

    'clusters.list': ['Clusters', '集群列表'],
    'clusters.register': ['Register a cluster', '登记集群'],
    'clusters.agent': ['Agent', '代理'],
    'clusters.heartbeat': ['Last heartbeat', '最近心跳'],
    'clusters.agentVersion': ['Agent version', '代理版本'],
    'clusters.certExpiry': ['Certificate expires', '证书到期'],
    'clusters.roleField': ['Cluster role', '集群角色'],
    'clusters.role.user': ['user (runs demos)', '用户集群（运行演示）'],
    'clusters.role.management': ['management', '管理集群'],
    'clusters.apiEndpoint': ['API endpoint', 'API 地址'],
    'clusters.mode': ['How', '方式'],
    'clusters.mode.manual': ['Register an existing cluster', '登记已有集群'],
    'clusters.mode.terraform': ['Provision with Terraform (plan first)', '用 Terraform 创建（先生成计划）'],
    'clusters.noRegions': ['Add a region first.', '请先添加地域。'],
    'clusters.provisioning': ['Provisioning', '创建方式'],
    'clusters.externalIp': ['External IP', '外部 IP'],
    'clusters.drift': ['Drift', '漂移'],
    'clusters.driftChecked': ['Drift checked', '漂移检查时间'],
    'clusters.k8sVersion': ['Kubernetes version', 'Kubernetes 版本'],
    'clusters.nodes': ['Nodes', '节点数'],
    'clusters.k8sReachable': ['Kubernetes API reachable', 'Kubernetes API 可达'],
    'clusters.k8sError': ['Kubernetes error', 'Kubernetes 错误'],
    'clusters.sessions': ['Agent sessions', '代理会话'],
    'clusters.peer': ['Peer', '对端地址'],
    'clusters.connectedAt': ['Connected', '连接时间'],
    'clusters.lastSeen': ['Last seen', '最近活动'],
    'clusters.disconnectedAt': ['Disconnected', '断开时间'],
    'clusters.recentTasks': ['Recent tasks', '最近任务'],
    'clusters.rtt': ['Round trip to agent', '到代理的往返时延'],
    'clusters.plan': ['Plan', '生成计划'],
    'clusters.provision': ['Provision', '创建'],
    'clusters.driftCheck': ['Drift check', '漂移检查'],
    'clusters.bootstrap': ['Bootstrap token', '引导令牌'],
    'clusters.destroy': ['Destroy', '销毁'],
    'clusters.manualHint': ['Plan, provision and drift check apply to clusters provisioned with Terraform.', '生成计划、创建和漂移检查仅适用于用 Terraform 创建的集群。'],
    'clusters.planTask': ['Plan task', '计划任务'],
    'clusters.provisionTask': ['Provision task', '创建任务'],
    'clusters.driftTask': ['Drift check task', '漂移检查任务'],
    'clusters.destroyTask': ['Destroy task', '销毁任务'],
    'clusters.provisionTitle': ['Provision cluster {name}?', '创建集群 {name}？'],
    'clusters.provisionBody': ['Terraform applies this plan to the cloud account and then installs the agent.', 'Terraform 将按此计划在云账号中创建资源，然后安装代理。'],
    'clusters.noPlan': ['No reviewed plan yet: provisioning plans and applies in one go. Run "Plan" first to review the changes.', '还没有已审阅的计划：创建会直接规划并应用。建议先点击「生成计划」查看变更。'],
    'clusters.destroyTitle': ['Destroy cluster {name}?', '销毁集群 {name}？'],
    'clusters.destroyBody': ['The agent is revoked, open tasks are cancelled and a Terraform-provisioned cluster is destroyed in the cloud.', '代理将被吊销，未完成的任务会被取消；用 Terraform 创建的集群会在云上被销毁。'],
    'clusters.deleted': ['Cluster {name} deleted.', '已删除集群 {name}。'],
    'clusters.destroyQueued': ['Destroy of {name} queued.', '已提交销毁 {name}。'],
    'clusters.tokenTitle': ['Agent bootstrap token', '代理引导令牌'],
    'clusters.tokenExpires': ['Single use, expires {time}.', '一次性使用，{time} 过期。'],
    'clusters.installManifest': ['Install in the cluster (kubectl apply --server-side -f -)', '在集群内安装（kubectl apply --server-side -f -）'],
    'clusters.installCommand': ['Or run the agent outside the cluster', '或在集群外运行代理'],
    'clusters.planSummary': ['Plan summary', '计划摘要'],
    'clusters.created': ['Cluster {name} registered.', '已登记集群 {name}。'],

    'task.state': ['State', '状态'],
    'task.kind': ['Kind', '类型'],
    'task.attempts': ['Attempts', '尝试次数'],
    'task.reason': ['Reason', '原因'],
    'task.error': ['Error', '错误'],
    'task.createdBy': ['Created by', '创建者'],
    'task.started': ['Started', '开始时间'],
    'task.finished': ['Finished', '结束时间'],
    'task.objects': ['Objects', '对象结果'],
    'task.events': ['Events', '事件'],
    'task.logs': ['Logs', '日志'],
    'task.output': ['Output', '输出'],
    'task.payload': ['Payload', '请求内容'],
    'task.cancel': ['Cancel task', '取消任务'],
    'task.cancelTitle': ['Cancel this task?', '取消此任务？'],
    'task.cancelled': ['Task cancelled.', '任务已取消。'],
    'task.open': ['Open task', '打开任务'],
    'task.object.kind': ['Kind', '类型'],
    'task.object.namespace': ['Namespace', '命名空间'],
    'task.object.outcome': ['Outcome', '结果'],
    'task.noLogs': ['No log lines yet.', '暂无日志。'],
    'task.title': ['Task {id}', '任务 {id}'],
    'tasks.filterState': ['State', '状态'],
    'tasks.filterCluster': ['Cluster', '集群'],

    'templates.list': ['Image templates', '镜像模板'],
    'templates.version': ['Version', '版本'],
    'templates.revision': ['Revision', '修订'],
    'templates.title': ['Title', '标题'],
    'templates.runtime': ['Runtime', '运行时'],
    'templates.port': ['Port', '端口'],
    'templates.health': ['Health path', '健康检查路径'],
    'templates.imageRequired': ['Needs your image', '需自带镜像'],
    'templates.defaultImage': ['Default image', '默认镜像'],
    'templates.process': ['Process', '进程'],
    'templates.env': ['Environment variables', '环境变量'],
    'templates.envDefault': ['Default', '默认值'],
    'templates.envRequired': ['Required', '必填'],
    'templates.envDescription': ['Description', '说明'],
    'templates.resources': ['Resources', '资源'],
    'templates.requests': ['Requests', '请求'],
    'templates.limits': ['Limits', '上限'],
    'templates.revisions': ['Revisions', '修订历史'],
    'templates.dockerfile': ['Dockerfile', 'Dockerfile'],
    'templates.loaded': ['Loaded', '加载时间'],
    'templates.latest': ['latest', '最新'],

    'demos.list': ['Demos', '演示应用列表'],
    'demos.deploy': ['One-click deploy', '一键部署'],
    'demos.template': ['Template', '模板'],
    'demos.image': ['Image', '镜像'],
    'demos.imageDefault': ['default: {image}', '默认：{image}'],
    'demos.imageRequired': ['This template needs an image reference.', '该模板需要填写镜像地址。'],
    'demos.region': ['Region', '地域'],
    'demos.auto': ['auto (least loaded ready cluster)', '自动（选择负载最低的就绪集群）'],
    'demos.env': ['Environment', '环境变量'],
    'demos.envKey': ['NAME', '变量名'],
    'demos.envValue': ['value', '值'],
    'demos.envAdd': ['Add variable', '添加变量'],
    'demos.envRemove': ['Remove', '移除'],
    'demos.replicas': ['Replicas', '副本数'],
    'demos.submit': ['Deploy', '部署'],
    'demos.currentStep': ['Current step', '当前步骤'],
    'demos.url': ['URL', '访问地址'],
    'demos.noUrl': ['no URL yet', '暂无访问地址'],
    'demos.steps': ['Deploy steps', '部署步骤'],
    'demos.version': ['Version', '版本'],
    'demos.owner': ['Owner', '所有者'],
    'demos.regionReason': ['Why this region', '选择原因'],
    'demos.versions': ['Version history', '版本历史'],
    'demos.versionReason': ['Reason', '原因'],
    'demos.current': ['current', '当前'],
    'demos.update': ['Update', '更新'],
    'demos.updateTitle': ['Roll out a new version', '发布新版本'],
    'demos.rollback': ['Roll back', '回滚'],
    'demos.rollbackTo': ['Roll back to version', '回滚到版本'],
    'demos.rollbackTitle': ['Roll back to version {v}?', '回滚到版本 {v}？'],
    'demos.stop': ['Stop', '停止'],
    'demos.start': ['Start', '启动'],
    'demos.retry': ['Retry failed step', '重试失败步骤'],
    'demos.deleteTitle': ['Delete demo {name}?', '删除演示 {name}？'],
    'demos.deleteBody': ['Its Kubernetes objects are pruned and the demo is closed. Its history stays readable.', '其 Kubernetes 对象将被清理，演示随后关闭，历史记录仍可查看。'],
    'demos.stopTitle': ['Stop demo {name}?', '停止演示 {name}？'],
    'demos.stopBody': ['It is scaled to zero and loses its URL until started again.', '副本将缩容到 0，在重新启动前没有访问地址。'],
    'demos.queued': ['Version {v} queued.', '版本 {v} 已提交。'],
    'demos.deleting': ['Delete requested.', '已请求删除。'],
    'demos.logs': ['Logs', '日志'],
    'demos.live': ['Live tail', '实时跟踪'],
    'demos.window': ['Window', '时间范围'],
    'demos.window.15m': ['last 15 min', '最近 15 分钟'],
    'demos.window.1h': ['last hour', '最近 1 小时'],
    'demos.window.24h': ['last 24 h', '最近 24 小时'],
    'demos.window.all': ['everything', '全部'],
    'demos.minLevel': ['Level', '级别'],
    'demos.filterText': ['Filter text', '过滤文本'],
    'demos.noLogs': ['No log lines match.', '没有匹配的日志。'],
    'demos.closedNote': ['This demo is closed; its record and history stay readable.', '该演示已关闭，记录和历史仍可查看。'],
    'demos.noTemplates': ['No templates loaded.', '没有已加载的模板。'],
    'demos.noDemos': ['No demos yet.', '还没有演示应用。'],

    'logs.title': ['Log search', '日志搜索'],
    'logs.demo': ['Demo', '演示应用'],
    'logs.anyDemo': ['all demos', '全部演示'],
    'logs.anyLevel': ['any level', '任意级别'],
    'logs.pod': ['Pod', 'Pod'],
    'logs.where': ['Cluster / region', '集群 / 地域'],
    'logs.loadMore': ['Load more', '加载更多'],
    'logs.live': ['Live tail', '实时跟踪'],
    'logs.liveOn': ['Following new lines…', '正在跟踪新日志…'],
    'logs.count': ['{n} lines', '{n} 行'],

    'users.list': ['Users', '用户列表'],
    'users.create': ['Create a user', '创建用户'],
    'users.username': ['Username', '用户名'],
    'users.password': ['Password', '密码'],
    'users.lastLogin': ['Last sign-in', '最近登录'],
    'users.disable': ['Disable', '停用'],
    'users.enable': ['Enable', '启用'],
    'users.setPassword': ['Set password', '设置密码'],
    'users.newPassword': ['New password for {name}', '{name} 的新密码'],
    'users.saved': ['User {name} updated.', '已更新用户 {name}。'],
    'users.created': ['User {name} created.', '已创建用户 {name}。'],
    'users.you': ['you', '你'],

    'tokens.list': ['API tokens', 'API 令牌列表'],
    'tokens.create': ['Create an API token', '创建 API 令牌'],
    'tokens.ttl': ['Valid for (days)', '有效期（天）'],
    'tokens.ttlHint': ['Empty: never expires.', '留空表示永不过期。'],
    'tokens.expires': ['Expires', '过期时间'],
    'tokens.lastUsed': ['Last used', '最近使用'],
    'tokens.revoke': ['Revoke', '吊销'],
    'tokens.revokeTitle': ['Revoke token {name}?', '吊销令牌 {name}？'],
    'tokens.revokeBody': ['Clients using it are refused from now on.', '使用它的客户端将立即被拒绝。'],
    'tokens.newToken': ['New token {name}', '新令牌 {name}'],
    'tokens.revoked': ['Token {name} revoked.', '已吊销令牌 {name}。'],

    'audit.title': ['Audit log', '审计日志'],
    'audit.actor': ['Actor', '操作者'],
    'audit.action': ['Action', '操作'],
    'audit.target': ['Target', '对象'],
    'audit.ip': ['IP', 'IP'],
    'audit.detail': ['Detail', '详情'],
  };
  const MESSAGES = { en: {}, zh: {} };
  for (const [key, [en, zh]] of Object.entries(TEXT)) {
    MESSAGES.en[key] = en;
    MESSAGES.zh[key] = zh;
  }

  const LANG_KEY = 'edgefleet.console.lang';
  let lang = initialLang();

  function initialLang() {
    let saved = null;
    try { saved = localStorage.getItem(LANG_KEY); } catch (_) { /* storage disabled */ }
    if (saved === 'en' || saved === 'zh') return saved;
    return (navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
  }

  function t(key, vars) {
    let s = MESSAGES[lang][key] ?? MESSAGES.en[key] ?? key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
    return s;
  }

  /** A status/state value shown translated; unknown values are shown as they are. */
  function tStatus(value) {
    if (value == null || value === '') return t('common.none');
    const key = 'status.' + value;
    return key in MESSAGES.en ? t(key) : String(value);
  }

  function setLang(next) {
    lang = next;
    try { localStorage.setItem(LANG_KEY, next); } catch (_) { /* storage disabled */ }
    applyDocumentLang();
    if (state.session) { renderShell(); route(); } else { renderLogin(); }
  }

  function applyDocumentLang() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  }

  function locale() {
    if (lang === 'zh') return 'zh-CN';
    const nav = navigator.language || 'en-US';
    return nav.toLowerCase().startsWith('zh') ? 'en-US' : nav;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Times: local time with Intl, relative "x s ago" kept current by a ticker.
  // ---------------------------------------------------------------------------------------------------------
  function parseTime(value) {
    if (!value) return null;
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function fmtTime(value) {
    const d = parseTime(value);
    if (!d) return t('common.none');
    return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'medium' }).format(d);
  }

  function fmtClock(value) {
    const d = parseTime(value);
    if (!d) return '';
    const time = new Intl.DateTimeFormat(locale(), { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false }).format(d);
    return time + '.' + String(d.getMilliseconds()).padStart(3, '0');
  }

  function relTime(value) {
    const d = parseTime(value);
    if (!d) return t('common.none');
    const diff = Math.round((Date.now() - d.getTime()) / 1000);
    const secs = Math.abs(diff);
    if (secs < 3) return t('rel.now');
    const [n, unit] = secs < 60 ? [secs, 's']
      : secs < 3600 ? [Math.floor(secs / 60), 'm']
        : secs < 86400 ? [Math.floor(secs / 3600), 'h'] : [Math.floor(secs / 86400), 'd'];
    return t((diff < 0 ? 'rel.in.' : 'rel.') + unit, { n });
  }

  /** <time> showing "x s ago" (kept current) with the full local time as tooltip, or the local time itself. */
  function timeEl(value, relative = true) {
    const d = parseTime(value);
    if (!d) return h('span', { class: 'muted' }, t('common.none'));
    return h('time', { datetime: d.toISOString(), title: fmtTime(value), class: relative ? 'rel' : null },
      relative ? relTime(value) : fmtTime(value));
  }

  setInterval(() => {
    for (const el of document.querySelectorAll('time.rel')) el.textContent = relTime(el.getAttribute('datetime'));
  }, 5000);

  /** datetime-local input value (local wall time) -> RFC 3339 in UTC, or undefined. */
  function localInputToRfc3339(value) {
    if (!value) return undefined;
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
  }

  /** RFC 3339 -> datetime-local input value in local time. */
  function rfc3339ToLocalInput(value) {
    const d = parseTime(value);
    if (!d) return '';
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  // ---------------------------------------------------------------------------------------------------------
  // DOM helper: h(tag, attrs, ...children). Children are nodes or text (never parsed as HTML).
  // ---------------------------------------------------------------------------------------------------------
  const BOOL_PROPS = new Set(['checked', 'disabled', 'selected', 'hidden', 'required', 'multiple', 'readOnly']);

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    let value;
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      else if (k === 'value') value = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (BOOL_PROPS.has(k)) el[k] = true;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    appendAll(el, children);
    if (value !== undefined) el.value = value; // after the options of a <select> exist
    return el;
  }

  function appendAll(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  /** Replaces an element's children; null/false children are skipped (unlike replaceChildren). */
  function put(el, ...children) {
    el.replaceChildren();
    return appendAll(el, children);
  }

  let uid = 0;
  const nextId = (prefix) => `${prefix}-${++uid}`;
  const enc = encodeURIComponent;

  function qs(params) {
    const out = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === '') continue;
      out.set(k, String(v));
    }
    const s = out.toString();
    return s ? '?' + s : '';
  }

  // ---------------------------------------------------------------------------------------------------------
  // API wrapper: same-origin cookie, CSRF header on state changes, 401 -> sign-in, errors as ApiError.
  // ---------------------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = Array.isArray(details) ? details : [];
    }
  }

  // Nanosecond timestamps exceed 2^53: keep them as strings so paging by them is exact.
  const BIG_INT_FIELDS = /"(next_after|ts_nanos)"\s*:\s*(-?\d+)/g;

  async function api(method, path, body, opts = {}) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET' && method !== 'HEAD' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    let res;
    try {
      res = await fetch('/api/v1' + path, init);
    } catch (_) {
      throw new ApiError(0, 'network', t('err.network'));
    }
    const text = res.status === 204 ? '' : await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text.replace(BIG_INT_FIELDS, '"$1":"$2"')); } catch (_) { data = null; }
    }
    if (res.ok) return data;
    const e = (data && data.error) || {};
    const err = new ApiError(res.status, e.code || 'http_' + res.status, e.message || t('err.http', { status: res.status }), e.details);
    if (res.status === 401 && !opts.allow401) requireLogin();
    if (res.status === 403 && err.code === 'csrf' && !opts.retried && (await refreshSession())) {
      return api(method, path, body, { ...opts, retried: true });
    }
    throw err;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Session and roles.
  // ---------------------------------------------------------------------------------------------------------
  const state = { session: null, csrf: null, returnHash: null, ctx: null, els: null, expiryTimer: null };
  const ROLE_RANK = { viewer: 0, operator: 1, admin: 2 };
  const ROLES = ['viewer', 'operator', 'admin'];

  function can(role) {
    const mine = state.session && state.session.user ? state.session.user.role : null;
    return mine != null && (ROLE_RANK[mine] ?? -1) >= ROLE_RANK[role];
  }

  function setSession(session) {
    state.session = session;
    state.csrf = session ? session.csrf_token : null;
    clearTimeout(state.expiryTimer);
    const end = session && parseTime(session.expires_at);
    if (end) {
      const wait = Math.min(Math.max(end.getTime() - Date.now() + 1000, 1000), 2 ** 31 - 1);
      state.expiryTimer = setTimeout(() => { refreshSession(); }, wait);
    }
  }

  async function refreshSession() {
    try {
      setSession(await api('GET', '/session', undefined, { allow401: true }));
      return true;
    } catch (err) {
      if (err.status === 401) requireLogin();
      return false;
    }
  }

  function requireLogin() {
    if (!state.session && document.querySelector('[data-testid="login-submit"]')) return;
    const wasSignedIn = !!state.session;
    leavePage();
    setSession(null);
    state.returnHash = location.hash || '#/overview';
    renderLogin(wasSignedIn ? t('login.expired') : null);
  }

  function onSignedIn(session) {
    setSession(session);
    const back = state.returnHash;
    state.returnHash = null;
    renderShell();
    if (back && back !== location.hash) location.hash = back; // hashchange routes
    else route();
  }

  async function signOut() {
    try { await api('DELETE', '/session', undefined, { allow401: true }); } catch (_) { /* signed out anyway */ }
    leavePage();
    setSession(null);
    state.returnHash = null;
    renderLogin();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Page context: everything a page starts (timers, polls, event streams) ends when the page is left.
  // ---------------------------------------------------------------------------------------------------------
  function newCtx() {
    const cleanups = [];
    const ctx = {
      alive: true,
      onLeave(fn) { cleanups.push(fn); },
      later(ms, fn) {
        const id = setTimeout(() => { if (ctx.alive) fn(); }, ms);
        cleanups.push(() => clearTimeout(id));
      },
      every(ms, fn) {
        const id = setInterval(() => { if (ctx.alive) fn(); }, ms);
        cleanups.push(() => clearInterval(id));
      },
      /** Runs fn now and again every ms after it settles, until it returns false or the page is left. */
      poll(ms, fn) {
        const run = async () => {
          if (!ctx.alive) return;
          let again = true;
          try { again = (await fn()) !== false; } catch (err) { if (err.status === 401) return; }
          if (again) ctx.later(ms, run);
        };
        run();
      },
      /** An EventSource whose named events get parsed JSON (or text) data; closed when the page is left. */
      stream(url, handlers) {
        const es = new EventSource(url, { withCredentials: true });
        for (const [name, fn] of Object.entries(handlers)) {
          if (name === 'onerror') continue;
          es.addEventListener(name, (ev) => {
            let data = ev.data;
            try { data = JSON.parse(ev.data); } catch (_) { /* plain text event */ }
            fn(data, ev);
          });
        }
        es.onerror = (ev) => { if (handlers.onerror) handlers.onerror(ev, es); };
        cleanups.push(() => es.close());
        return es;
      },
      end() {
        ctx.alive = false;
        for (const fn of cleanups.splice(0)) { try { fn(); } catch (_) { /* ignore */ } }
      },
    };
    return ctx;
  }

  function leavePage() {
    if (state.ctx) state.ctx.end();
    state.ctx = null;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Small UI components.
  // ---------------------------------------------------------------------------------------------------------
  const TONES = {
    green: ['ready', 'online', 'succeeded', 'connected', 'in_sync', 'enabled', 'active', 'applied', 'unchanged'],
    amber: ['pending', 'running', 'leased', 'developing', 'bootstrapping', 'provisioning', 'registered', 'planned',
      'destroying', 'drifted', 'warn', 'not_ready'],
    red: ['failed', 'degraded', 'error'],
    blue: ['info', 'terraform'],
  };
  const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

  function tone(value) {
    for (const [name, values] of Object.entries(TONES)) if (values.includes(value)) return name;
    return 'grey';
  }

  function badge(value, attrs = {}) {
    return h('span', { ...attrs, class: `badge badge-${tone(value)}`, 'data-value': value ?? '' }, tStatus(value));
  }

  function levelBadge(level) {
    const key = 'level.' + level;
    return h('span', { class: `badge badge-small badge-${tone(level)}` }, key in MESSAGES.en ? t(key) : String(level || ''));
  }

  function httpStatusBadge(code) {
    const n = Number(code);
    const cls = n >= 500 ? 'red' : n >= 400 ? 'amber' : n >= 200 ? 'green' : 'grey';
    return h('span', { class: `badge badge-${cls}` }, String(code));
  }

  function link(href, text, attrs = {}) { return h('a', { href, ...attrs }, text); }

  function externalLink(url, attrs = {}) {
    return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'ext', ...attrs }, url);
  }

  function dash() { return h('span', { class: 'muted' }, t('common.none')); }
  function orDash(v) { return v == null || v === '' ? dash() : String(v); }

  function button(label, onclick, attrs = {}) {
    return h('button', { type: 'button', class: 'btn', ...attrs, onclick }, label);
  }

  /** A button that disables itself while its async action runs; errors become a toast. */
  function actionButton(label, action, attrs = {}) {
    const b = button(label, async () => {
      b.disabled = true;
      try { await action(); } catch (err) { reportError(err); } finally { b.disabled = false; }
    }, attrs);
    return b;
  }

  function setTitle(text) {
    document.title = `${text} · ${t('app.name')}`;
    if (state.els) state.els.title.textContent = text;
  }

  function pageHead(title, ...actions) {
    setTitle(title);
    return h('div', { class: 'page-head' }, h('h1', null, title), h('div', { class: 'page-actions' }, actions));
  }

  function card(title, body, opts = {}) {
    return h('section', { class: ['card', opts.class], 'data-testid': opts.testid },
      title || opts.actions ? h('div', { class: 'card-head' }, h('h2', null, title), h('div', { class: 'card-actions' }, opts.actions)) : null,
      h('div', { class: 'card-body' }, body));
  }

  function alertBox(kind, ...content) {
    return h('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, content);
  }

  function loadingEl() { return h('div', { class: 'loading' }, h('span', { class: 'spinner' }), t('common.loading')); }

  /** Definition list of [label, value] pairs. */
  function props(pairs) {
    return h('dl', { class: 'props' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v == null || v === '' ? dash() : v)]));
  }

  function toast(message, kind = 'ok') {
    let box = document.getElementById('toasts');
    if (!box) { box = h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite' }); document.body.append(box); }
    const el = h('div', { class: `toast toast-${kind}` }, message);
    box.append(el);
    setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
  }

  function reportError(err) {
    if (err && err.status === 401) return; // the sign-in form is already shown
    toast(err && err.message ? err.message : String(err), 'error');
  }

  /** Renders an error in place of a page (section), with a retry button. */
  function errorBlock(err, retry) {
    if (err && err.status === 401) return h('div');
    return alertBox('error', h('span', null, err.message || String(err)), retry ? button(t('common.retry'), retry, { class: 'btn btn-small' }) : null);
  }

  /** Loads data and renders it into a container; shows loading and errors (with retry). */
  async function fill(container, load, render) {
    if (!container.firstChild) container.append(loadingEl());
    try {
      const data = await load();
      put(container, ...[render(data)].flat().filter(Boolean));
    } catch (err) {
      put(container, errorBlock(err, () => fill(container, load, render)));
    }
  }

  function copyBox(text, testid) {
    const pre = h('pre', { class: 'copy-text', 'data-testid': testid }, text);
    const b = button(t('common.copy'), async () => {
      try {
        await navigator.clipboard.writeText(text);
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(pre);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        document.execCommand('copy');
      }
      b.textContent = t('common.copied');
      setTimeout(() => { b.textContent = t('common.copy'); }, 1500);
    }, { class: 'btn btn-small copy-btn' });
    return h('div', { class: 'copy-box' }, b, pre);
  }

  /** A secret shown once: warning, copyable value, and a close button. */
  function secretPanel(title, secret, testid, ...more) {
    const panel = card(title, [
      alertBox('warn', t('secret.once')),
      copyBox(secret, testid),
      more,
    ], { class: 'secret-card', actions: button(t('common.close'), () => panel.remove(), { class: 'btn btn-small' }) });
    return panel;
  }

  /** Modal confirmation; resolves true/false. With `typed`, OK stays disabled until that text is typed. */
  function confirmDialog({ title, body, ok, danger, typed }) {
    return new Promise((resolve) => {
      const before = document.activeElement;
      const okBtn = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary', 'data-testid': 'confirm-ok' }, ok || t('common.confirm'));
      const cancelBtn = h('button', { type: 'button', class: 'btn', 'data-testid': 'confirm-cancel' }, t('common.cancel'));
      let input = null;
      if (typed) {
        input = h('input', { class: 'input', 'data-testid': 'confirm-input', autocomplete: 'off', spellcheck: 'false' });
        okBtn.disabled = true;
        input.addEventListener('input', () => { okBtn.disabled = input.value !== typed; });
      }
      const overlay = h('div', { class: 'modal-overlay' },
        h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
          h('h2', null, title),
          h('div', { class: 'modal-body' }, body,
            typed ? h('label', { class: 'typed-confirm' }, t('confirm.typeName', { name: typed }), input) : null),
          h('div', { class: 'modal-actions' }, cancelBtn, okBtn)));
      const onKey = (ev) => {
        if (ev.key === 'Escape') done(false);
        if (ev.key === 'Enter' && input && !okBtn.disabled && document.activeElement === input) done(true);
      };
      function done(result) {
        overlay.remove();
        document.removeEventListener('keydown', onKey);
        if (before && before.focus) before.focus();
        resolve(result);
      }
      okBtn.addEventListener('click', () => done(true));
      cancelBtn.addEventListener('click', () => done(false));
      overlay.addEventListener('click', (ev) => { if (ev.target === overlay) done(false); });
      document.addEventListener('keydown', onKey);
      document.body.append(overlay);
      (input || okBtn).focus();
    });
  }

  /** Modal asking for one value (e.g. a new password); resolves the value or null. */
  async function promptDialog({ title, label, type = 'text', name = 'value' }) {
    const input = h('input', { class: 'input', type, name, autocomplete: type === 'password' ? 'new-password' : 'off' });
    const ok = await confirmDialog({ title, body: h('label', { class: 'field' }, h('span', { class: 'label' }, label), input) });
    return ok ? input.value : null;
  }

  // Tables -----------------------------------------------------------------------------------------------
  /**
   * columns: [{label, cell: row => node|text, class}]; client-side pages of `pageSize` rows.
   * opts.rowAttrs(row) adds attributes (data-testid...), opts.pager keeps the page across redraws.
   */
  function table(columns, rows, opts = {}) {
    const pageSize = opts.pageSize || 25;
    const pager = opts.pager || { page: 0 };
    const wrap = h('div', { class: 'table-wrap' });
    const draw = () => {
      const pages = Math.max(1, Math.ceil(rows.length / pageSize));
      pager.page = Math.min(pager.page, pages - 1);
      const slice = rows.slice(pager.page * pageSize, (pager.page + 1) * pageSize);
      const body = slice.length
        ? slice.map((row) => h('tr', opts.rowAttrs ? opts.rowAttrs(row) : null,
          columns.map((c) => h('td', { class: c.class }, c.cell(row)))))
        : h('tr', null, h('td', { class: 'empty', colspan: columns.length }, opts.empty || t('common.empty')));
      put(wrap, 
        h('table', { class: 'table', 'data-testid': opts.testid },
          h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.class }, c.label)))),
          h('tbody', null, body)),
        rows.length > pageSize ? pagerEl({
          from: pager.page * pageSize + 1, to: pager.page * pageSize + slice.length, total: rows.length,
          hasPrev: pager.page > 0, hasNext: pager.page < pages - 1,
          onPrev: () => { pager.page--; draw(); }, onNext: () => { pager.page++; draw(); },
        }) : null);
    };
    draw();
    return wrap;
  }

  function pagerEl({ from, to, total, hasPrev, hasNext, onPrev, onNext }) {
    const range = to < from ? '' : total != null ? t('common.rangeTotal', { from, to, total }) : t('common.range', { from, to });
    return h('div', { class: 'pager' },
      h('span', { class: 'pager-range' }, range),
      button(t('common.prev'), onPrev, { class: 'btn btn-small', disabled: !hasPrev, 'data-testid': 'page-prev' }),
      button(t('common.next'), onNext, { class: 'btn btn-small', disabled: !hasNext, 'data-testid': 'page-next' }));
  }

  // Forms ------------------------------------------------------------------------------------------------
  function input(name, attrs = {}) {
    return h('input', { class: 'input', name, id: nextId('in'), ...attrs });
  }

  function select(name, options, attrs = {}) {
    return h('select', { class: 'input', name, id: nextId('in'), ...attrs },
      options.map(([value, label]) => h('option', { value }, label)));
  }

  function field(label, control, opts = {}) {
    return h('div', { class: ['field', opts.wide && 'field-wide', opts.class] },
      h('label', { class: 'label', for: control.id || null }, label,
        opts.required ? h('span', { class: 'req' }, ' *') : null,
        opts.optional ? h('span', { class: 'opt' }, ` (${t('common.optional')})`) : null),
      control,
      opts.hint ? h('div', { class: 'hint' }, opts.hint) : null);
  }

  function checkbox(name, label, checked) {
    return h('label', { class: 'check' }, h('input', { type: 'checkbox', name, checked }), h('span', null, label));
  }

  /** A form with an error area on top; onSubmit(values) runs with the submit button disabled. */
  function form(attrs, children, onSubmit) {
    const f = h('form', { class: 'form', novalidate: true, ...attrs }, h('div', { class: 'form-errors' }), children);
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const submit = f.querySelector('[type="submit"]');
      clearFormErrors(f);
      if (submit) submit.disabled = true;
      f.classList.add('busy');
      try {
        await onSubmit(formValues(f), f);
      } catch (err) {
        showFormError(f, err);
      } finally {
        if (submit) submit.disabled = false;
        f.classList.remove('busy');
      }
    });
    return f;
  }

  function formValues(f) {
    const out = {};
    for (const el of f.elements) {
      if (!el.name || el.closest('[data-field="env"]')) continue;
      out[el.name] = el.type === 'checkbox' ? el.checked : el.value.trim();
    }
    return out;
  }

  function clearFormErrors(f) {
    f.querySelector('.form-errors').replaceChildren();
    for (const el of f.querySelectorAll('.field-error')) el.remove();
    for (const el of f.querySelectorAll('.invalid')) { el.classList.remove('invalid'); el.removeAttribute('aria-invalid'); }
  }

  /** Maps an API field name ("credentials.secret_id", "env.FOO", "manifest[0]") to a control of the form. */
  function findControl(f, fieldName) {
    if (!fieldName) return null;
    const candidates = [fieldName, fieldName.split('.').pop(), fieldName.split(/[.[]/)[0]];
    for (const c of candidates) {
      const sel = `[name="${CSS.escape(c)}"], [data-field="${CSS.escape(c)}"]`;
      const el = f.querySelector(sel);
      if (el) return el;
    }
    return null;
  }

  function showFormError(f, err) {
    if (err.status === 401) return;
    const top = f.querySelector('.form-errors');
    if (err.status !== 422 || !err.details.length) {
      put(top, alertBox('error', err.message));
      return;
    }
    const unplaced = [];
    let first = null;
    for (const d of err.details) {
      const msg = h('div', { class: 'field-error', 'data-testid': `field-error-${d.field}` }, d.message);
      const control = findControl(f, d.field);
      if (control) {
        control.classList.add('invalid');
        control.setAttribute('aria-invalid', 'true');
        const holder = control.closest('.field') || control.parentElement;
        holder.append(msg);
        first = first || control;
      } else {
        msg.prepend(h('strong', null, d.field ? `${d.field}: ` : ''));
        unplaced.push(msg);
      }
    }
    put(top, alertBox('error', unplaced.length ? err.message : t('err.fields'), unplaced));
    if (first && first.focus) first.focus();
  }

  /** Key/value rows for environment variables; value() -> {NAME: value} of the filled rows. */
  function envEditor(initial = {}, suggestions = []) {
    const rows = h('div', { class: 'env-rows' });
    const addRow = (key = '', value = '', placeholder = '') => {
      const row = h('div', { class: 'env-row' },
        h('input', { class: 'input mono', 'aria-label': t('demos.envKey'), placeholder: t('demos.envKey'), value: key, spellcheck: 'false' }),
        h('input', { class: 'input mono', 'aria-label': t('demos.envValue'), placeholder: placeholder || t('demos.envValue'), value }),
        button('×', () => row.remove(), { class: 'btn btn-small btn-icon', title: t('demos.envRemove'), 'aria-label': t('demos.envRemove') }));
      rows.append(row);
    };
    const el = h('div', { class: 'env-editor', 'data-field': 'env' }, rows,
      button(t('demos.envAdd'), () => addRow(), { class: 'btn btn-small', 'data-testid': 'env-add' }));
    const setSuggestions = (list, values = {}) => {
      put(rows);
      const seen = new Set();
      for (const v of list) { seen.add(v.name); addRow(v.name, values[v.name] ?? '', v.default ?? ''); }
      for (const [k, v] of Object.entries(values)) if (!seen.has(k)) addRow(k, v);
    };
    setSuggestions(suggestions, initial);
    return {
      el,
      setSuggestions,
      value() {
        const out = {};
        for (const row of rows.children) {
          const [k, v] = row.querySelectorAll('input');
          if (k.value.trim() && v.value !== '') out[k.value.trim()] = v.value;
        }
        return out;
      },
    };
  }

  function randomKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  // ---------------------------------------------------------------------------------------------------------
  // Shell: sign-in screen, sidebar, top bar, router.
  // ---------------------------------------------------------------------------------------------------------
  const NAV = [
    [null, ['overview']],
    ['nav.group.infra', ['clouds', 'regions', 'clusters']],
    ['nav.group.workloads', ['templates', 'demos']],
    ['nav.group.ops', ['tasks', 'logs']],
    ['nav.group.admin', ['users', 'tokens', 'audit']],
  ];
  const ADMIN_PAGES = new Set(['users', 'tokens', 'audit']);

  function langSwitch() {
    return h('button', {
      type: 'button', class: 'lang-switch', 'data-testid': 'lang-switch', 'data-lang': lang,
      title: t('top.language'), 'aria-label': t('top.language'),
      onclick: () => setLang(lang === 'en' ? 'zh' : 'en'),
    }, h('span', { class: lang === 'en' ? 'on' : null }, 'EN'), h('span', { class: 'sep' }, '/'), h('span', { class: lang === 'zh' ? 'on' : null }, '中文'));
  }

  function brand() {
    return h('div', { class: 'brand' }, h('span', { class: 'brand-mark' }, 'E'),
      h('span', { class: 'brand-text' }, h('strong', null, t('app.name')), h('small', null, t('app.tagline'))));
  }

  function renderLogin(notice) {
    applyDocumentLang();
    document.title = `${t('login.title')} · ${t('app.name')}`;
    state.els = null;
    const errSlot = h('div', { class: 'login-error-slot' });
    const user = h('input', { class: 'input', name: 'username', id: 'login-username', autocomplete: 'username', required: true, 'data-testid': 'login-username' });
    const pass = h('input', { class: 'input', name: 'password', id: 'login-password', type: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', 'data-testid': 'login-submit' }, t('login.submit'));
    const f = h('form', { class: 'login-form', novalidate: true, 'data-testid': 'login-form' },
      h('div', { class: 'field' }, h('label', { class: 'label', for: 'login-username' }, t('login.username')), user),
      h('div', { class: 'field' }, h('label', { class: 'label', for: 'login-password' }, t('login.password')), pass),
      errSlot, submit);
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      put(errSlot);
      try {
        const session = await api('POST', '/session', { username: user.value.trim(), password: pass.value }, { allow401: true });
        onSignedIn(session);
      } catch (err) {
        pass.value = '';
        put(errSlot, h('div', { class: 'alert alert-error', role: 'alert', 'data-testid': 'login-error' }, err.message));
        pass.focus();
      } finally {
        submit.disabled = false;
      }
    });
    document.getElementById('app').replaceChildren(h('div', { class: 'login-page' },
      h('div', { class: 'login-card' },
        h('div', { class: 'login-top' }, brand(), langSwitch()),
        h('h1', null, t('login.title')),
        h('p', { class: 'muted' }, t('login.subtitle')),
        notice ? alertBox('info', notice) : null,
        f)));
    user.focus();
  }

  function renderShell() {
    applyDocumentLang();
    const { user } = state.session;
    const nav = h('nav', { class: 'sidebar', 'aria-label': 'main' }, brand(),
      NAV.map(([group, pages]) => {
        const visible = pages.filter((p) => !ADMIN_PAGES.has(p) || can('admin'));
        if (!visible.length) return null;
        return h('div', { class: 'nav-group' },
          group ? h('div', { class: 'nav-group-title' }, t(group)) : null,
          visible.map((p) => h('a', { href: `#/${p}`, class: 'nav-item', 'data-testid': `nav-${p}`, 'data-page': p }, t(`nav.${p}`))));
      }));
    const title = h('div', { class: 'topbar-title' });
    const top = h('header', { class: 'topbar' }, title,
      h('div', { class: 'topbar-right' },
        h('div', { class: 'user-menu', 'data-testid': 'user-menu', title: `${user.username} (${user.role})` },
          h('span', { class: 'avatar' }, (user.username || '?').slice(0, 1).toUpperCase()),
          h('span', { class: 'user-name' }, user.username),
          h('span', { class: `role-pill role-${user.role}`, 'data-role': user.role }, t(`role.${user.role}`))),
        langSwitch(),
        button(t('top.signout'), signOut, { class: 'btn btn-ghost', 'data-testid': 'logout' })));
    const main = h('main', { class: 'content', id: 'main' });
    document.getElementById('app').replaceChildren(h('div', { class: 'layout' }, nav, h('div', { class: 'main-col' }, top, main)));
    state.els = { nav, main, title };
  }

  const ROUTES = [
    [/^\/overview$/, () => pageOverview],
    [/^\/clouds$/, () => pageClouds],
    [/^\/regions$/, () => pageRegions],
    [/^\/clusters$/, () => pageClusters],
    [/^\/clusters\/([^/]+)$/, () => pageCluster],
    [/^\/templates$/, () => pageTemplates],
    [/^\/templates\/([^/]+)$/, () => pageTemplate],
    [/^\/demos$/, () => pageDemos],
    [/^\/demos\/([^/]+)$/, () => pageDemo],
    [/^\/tasks$/, () => pageTasks],
    [/^\/tasks\/([^/]+)$/, () => pageTask],
    [/^\/logs$/, () => pageLogs],
    [/^\/users$/, () => pageUsers, 'admin'],
    [/^\/tokens$/, () => pageTokens, 'admin'],
    [/^\/audit$/, () => pageAudit, 'admin'],
  ];

  function currentRoute() {
    const raw = location.hash.replace(/^#/, '') || '/overview';
    const i = raw.indexOf('?');
    return { path: i < 0 ? raw : raw.slice(0, i), query: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)) };
  }

  /** Changes the hash query of the current page (filters, offsets): the router re-renders the page. */
  function setQuery(params) {
    const { path } = currentRoute();
    location.hash = '#' + path + qs(params);
  }

  function route() {
    if (!state.session || !state.els) return;
    const { path, query } = currentRoute();
    leavePage();
    const ctx = state.ctx = newCtx();
    const section = path.split('/')[1] || '';
    for (const a of state.els.nav.querySelectorAll('.nav-item')) a.classList.toggle('active', a.dataset.page === section);
    const main = state.els.main;
    const page = h('div', { class: 'page' });
    put(main, page);
    main.scrollTop = 0;
    for (const [re, get, role] of ROUTES) {
      const m = path.match(re);
      if (!m) continue;
      if (role && !can(role)) {
        page.append(pageHead(t(`nav.${section}`)), alertBox('error', t('err.forbiddenPage', { role: t(`role.${role}`) })));
        return;
      }
      Promise.resolve(get()(ctx, page, m.slice(1).map(decodeURIComponent), query))
        .catch((err) => { if (ctx.alive) page.append(errorBlock(err, route)); });
      return;
    }
    page.append(pageHead(t('err.notFound')), h('p', null, link('#/overview', t('nav.overview'))));
  }

  // ---------------------------------------------------------------------------------------------------------
  // Shared page helpers.
  // ---------------------------------------------------------------------------------------------------------
  /** GETs several paths at once; a failed one yields `fallback` (lookups for names are best effort). */
  async function getAll(paths, fallback = []) {
    const results = await Promise.allSettled(paths.map((p) => api('GET', p)));
    return results.map((r) => {
      if (r.status === 'fulfilled') return r.value;
      if (r.reason && r.reason.status === 401) throw r.reason;
      return fallback;
    });
  }

  const byId = (list) => new Map((list || []).map((x) => [x.id, x]));
  const regionLabel = (r) => (r ? r.display_name || r.code : null);

  function clusterLink(id, clusters) {
    if (!id) return dash();
    const c = clusters && clusters.get(id);
    return link(`#/clusters/${enc(id)}`, c ? c.name : id.slice(0, 8));
  }

  function agentBadge(agent) {
    return badge(agent && agent.connected ? 'connected' : 'disconnected', { 'data-testid': 'agent-connected' });
  }

  function split(main, aside) {
    return aside ? h('div', { class: 'split' }, h('div', { class: 'split-main' }, main), h('div', { class: 'split-aside' }, aside)) : main;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Overview.
  // ---------------------------------------------------------------------------------------------------------
  async function pageOverview(ctx, page) {
    const body = h('div', { class: 'overview' }, loadingEl());
    page.append(pageHead(t('nav.overview'), button(t('common.refresh'), () => load(), { class: 'btn btn-small' })), body);
    const load = () => fill(body,
      () => getAll(['/regions', '/clusters', '/demos', '/tasks?state=failed&limit=10']),
      ([regions, clusters, demos, failed]) => renderOverview(regions, clusters, demos, failed));
    await load();
    ctx.every(15000, load);
  }

  function renderOverview(regions, clusters, demos, failed) {
    const clusterMap = byId(clusters);
    const regionMap = byId(regions);
    const stat = (label, value, total, cls) => h('div', { class: ['stat', cls] },
      h('div', { class: 'stat-value' }, String(value), total != null ? h('span', { class: 'stat-total' }, ` / ${total}`) : null),
      h('div', { class: 'stat-label' }, label));
    const stats = h('div', { class: 'stats' },
      stat(t('overview.stat.regions'), regions.filter((r) => r.enabled).length, regions.length),
      stat(t('overview.stat.clusters'), clusters.filter((c) => c.status === 'ready').length, clusters.length),
      stat(t('overview.stat.agents'), clusters.filter((c) => c.agent && c.agent.connected).length, clusters.length),
      stat(t('overview.stat.demos'), demos.filter((d) => d.status === 'online').length, demos.length),
      stat(t('overview.stat.failed'), failed.length, null, failed.length ? 'stat-bad' : null));

    const clusterLine = (c) => h('li', { class: 'region-cluster', 'data-testid': `overview-cluster-${c.name}` },
      link(`#/clusters/${enc(c.id)}`, c.name, { class: 'strong' }),
      badge(c.status), agentBadge(c.agent),
      h('span', { class: 'muted small' }, c.agent && c.agent.last_heartbeat_at ? timeEl(c.agent.last_heartbeat_at) : t('common.none')));
    const regionCards = regions.map((r) => {
      const own = clusters.filter((c) => c.region_id === r.id);
      return h('div', { class: 'region-card', 'data-testid': `overview-region-${r.code}` },
        h('div', { class: 'region-card-head' },
          h('div', null, h('strong', null, regionLabel(r)), h('div', { class: 'muted small' }, `${r.code} · ${r.cloud_name || ''}`)),
          badge(r.enabled ? 'enabled' : 'disabled')),
        own.length ? h('ul', { class: 'region-clusters' }, own.map(clusterLine)) : h('p', { class: 'muted small' }, t('overview.noClusters')));
    });
    const orphans = clusters.filter((c) => !regionMap.has(c.region_id));
    if (orphans.length) {
      regionCards.push(h('div', { class: 'region-card' }, h('div', { class: 'region-card-head' }, h('strong', null, t('overview.other'))),
        h('ul', { class: 'region-clusters' }, orphans.map(clusterLine))));
    }

    const demoTable = table([
      { label: t('common.name'), cell: (d) => link(`#/demos/${enc(d.id)}`, d.name) },
      { label: t('common.status'), cell: (d) => badge(d.status) },
      { label: t('demos.url'), cell: (d) => (d.url ? externalLink(d.url) : dash()) },
      { label: t('common.updated'), cell: (d) => timeEl(d.updated_at) },
    ], demos.slice(0, 8), { empty: t('demos.noDemos') });
    const taskTable = table([
      { label: t('task.kind'), cell: (x) => link(`#/tasks/${enc(x.id)}`, x.kind) },
      { label: t('common.cluster'), cell: (x) => clusterLink(x.cluster_id, clusterMap) },
      { label: t('task.error'), cell: (x) => h('span', { class: 'clip', title: x.error || '' }, orDash(x.error)) },
      { label: t('task.finished'), cell: (x) => timeEl(x.finished_at || x.updated_at) },
    ], failed, { empty: t('overview.noFailed') });

    return [
      stats,
      card(t('overview.regions'), regionCards.length ? h('div', { class: 'region-grid' }, regionCards) : h('p', { class: 'muted' }, t('overview.noRegions'))),
      h('div', { class: 'grid-2' }, card(t('overview.recentDemos'), demoTable), card(t('overview.failedTasks'), taskTable)),
    ];
  }

  // ---------------------------------------------------------------------------------------------------------
  // Clouds.
  // ---------------------------------------------------------------------------------------------------------
  const PROVIDERS = ['tencentcloud', 'aws', 'local', 'existing'];
  const CREDENTIAL_FIELDS = {
    tencentcloud: [['secret_id', true], ['secret_key', true]],
    aws: [['access_key_id', true], ['secret_access_key', true], ['session_token', false]],
    local: [],
    existing: [],
  };

  async function pageClouds(ctx, page) {
    const list = h('div');
    const notice = h('div');
    const load = () => fill(list, () => api('GET', '/clouds'), (clouds) => table([
      { label: t('common.name'), cell: (c) => h('strong', null, c.name) },
      { label: t('clouds.provider'), cell: (c) => t(`provider.${c.provider}`) },
      { label: t('clouds.credentials'), cell: (c) => (c.credential_fields && c.credential_fields.length ? h('span', { class: 'chips' }, c.credential_fields.map((f) => h('code', { class: 'chip' }, f))) : dash()) },
      { label: t('clouds.regionCount'), cell: (c) => String(c.region_count ?? 0), class: 'num' },
      { label: t('common.created'), cell: (c) => timeEl(c.created_at) },
      can('admin') && { label: '', class: 'row-actions', cell: (c) => h('span', null,
        button(t('clouds.edit'), () => editCloud(c), { class: 'btn btn-small', 'data-testid': `cloud-edit-${c.name}` }),
        button(t('common.delete'), () => deleteCloud(c), { class: 'btn btn-small btn-danger-ghost', 'data-testid': `cloud-delete-${c.name}` })) },
    ].filter(Boolean), clouds, { rowAttrs: (c) => ({ 'data-testid': `cloud-row-${c.name}` }) }));

    const deleteCloud = async (c) => {
      const ok = await confirmDialog({ title: t('clouds.deleteTitle', { name: c.name }), body: h('p', null, t('clouds.deleteBody')), ok: t('common.delete'), danger: true });
      if (!ok) return;
      put(notice);
      try {
        await api('DELETE', `/clouds/${enc(c.id)}`);
        toast(t('clouds.deleted', { name: c.name }));
        load();
      } catch (err) {
        if (err.status !== 401) put(notice, alertBox('error', err.message));
      }
    };

    const aside = h('div');
    const showRegister = () => put(aside, card(t('clouds.register'), cloudForm(load)));
    const editCloud = (c) => put(aside, card(t('clouds.editTitle', { name: c.name }), cloudEditForm(c, () => { showRegister(); load(); }, showRegister)));
    if (can('admin')) showRegister();
    page.append(pageHead(t('nav.clouds')), notice, split(card(t('clouds.list'), list), can('admin') ? aside : null));
    await load();
  }

  /** Rename a cloud account or rotate its credentials (all of them at once; empty keeps the current ones). */
  function cloudEditForm(c, onSaved, onCancel) {
    const fields = CREDENTIAL_FIELDS[c.provider] || [];
    return form({ 'data-testid': 'cloud-edit-form' }, [
      field(t('common.name'), input('name', { required: true, value: c.name, spellcheck: 'false' }), { required: true }),
      fields.length
        ? h('div', { class: 'cred-fields' }, fields.map(([name]) => field(t(`cred.${name}`),
          input(name, { type: 'password', autocomplete: 'new-password', spellcheck: 'false', 'data-credential': 'true' }), { optional: true })))
        : null,
      fields.length ? h('p', { class: 'hint' }, t('clouds.rotateHint')) : null,
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'cloud-edit-submit' }, t('common.save')),
        button(t('common.cancel'), onCancel, { class: 'btn' })),
    ].filter(Boolean), async (values, el) => {
      const body = {};
      if (values.name !== c.name) body.name = values.name;
      const credentials = {};
      for (const inp of el.querySelectorAll('[data-credential]')) if (inp.value) credentials[inp.name] = inp.value;
      if (Object.keys(credentials).length) body.credentials = credentials;
      if (!Object.keys(body).length) { onCancel(); return; }
      const saved = await api('PATCH', `/clouds/${enc(c.id)}`, body);
      toast(t('clouds.updated', { name: saved.name }));
      onSaved();
    });
  }

  function cloudForm(onCreated) {
    const provider = select('provider', PROVIDERS.map((p) => [p, t(`provider.${p}`)]), { 'data-testid': 'cloud-provider' });
    const creds = h('div', { class: 'cred-fields' });
    const drawCreds = () => {
      const fields = CREDENTIAL_FIELDS[provider.value] || [];
      put(creds, fields.length
        ? fields.map(([name, required]) => field(t(`cred.${name}`),
          input(name, { type: 'password', autocomplete: 'new-password', spellcheck: 'false', 'data-credential': 'true' }),
          { required, optional: !required }))
        : h('p', { class: 'muted small' }, t('clouds.noCreds')));
    };
    provider.addEventListener('change', drawCreds);
    drawCreds();
    const f = form({ 'data-testid': 'cloud-form' }, [
      field(t('common.name'), input('name', { required: true, placeholder: 'lab-shanghai', spellcheck: 'false' }), { required: true }),
      field(t('clouds.provider'), provider, { required: true }),
      creds,
      h('p', { class: 'hint' }, t('clouds.credHint')),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'cloud-submit' }, t('common.create'))),
    ], async (values, el) => {
      const credentials = {};
      for (const inp of el.querySelectorAll('[data-credential]')) if (inp.value) credentials[inp.name] = inp.value;
      const body = { name: values.name, provider: values.provider };
      if (Object.keys(credentials).length) body.credentials = credentials;
      const created = await api('POST', '/clouds', body);
      el.reset();
      drawCreds();
      toast(t('clouds.created', { name: created.name }));
      onCreated();
    });
    return f;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Regions.
  // ---------------------------------------------------------------------------------------------------------
  async function pageRegions(ctx, page) {
    const list = h('div');
    const aside = can('admin') ? h('div') : null;
    const load = () => fill(list, () => api('GET', '/regions'), (regions) => table([
      { label: t('regions.cloud'), cell: (r) => h('span', null, r.cloud_name || dash(), h('span', { class: 'muted small' }, ` · ${r.provider ? t(`provider.${r.provider}`) : ''}`)) },
      { label: t('regions.code'), cell: (r) => h('code', null, r.code) },
      { label: t('regions.displayName'), cell: (r) => orDash(r.display_name) },
      { label: t('common.status'), cell: (r) => badge(r.enabled ? 'enabled' : 'disabled', { 'data-testid': `region-status-${r.code}` }) },
      { label: t('regions.clusters'), cell: (r) => String(r.cluster_count ?? 0), class: 'num' },
      { label: t('common.created'), cell: (r) => timeEl(r.created_at) },
      can('admin') && {
        label: '', class: 'row-actions',
        cell: (r) => actionButton(r.enabled ? t('regions.disable') : t('regions.enable'), async () => {
          const changed = await api('PATCH', `/regions/${enc(r.id)}`, { enabled: !r.enabled });
          toast(t('regions.toggled', { name: changed.code, state: tStatus(changed.enabled ? 'enabled' : 'disabled') }));
          load();
        }, { class: 'btn btn-small', 'data-testid': `region-toggle-${r.code}` }),
      },
    ].filter(Boolean), regions, { rowAttrs: (r) => ({ 'data-testid': `region-row-${r.code}` }) }));

    page.append(pageHead(t('nav.regions')), split(card(t('regions.list'), list), aside && card(t('regions.add'), aside)));
    if (aside) fill(aside, () => api('GET', '/clouds'), (clouds) => regionForm(clouds, load));
    await load();
  }

  function regionForm(clouds, onCreated) {
    if (!clouds.length) return h('p', { class: 'muted' }, t('regions.noClouds'), ' ', link('#/clouds', t('nav.clouds')));
    return form({ 'data-testid': 'region-form' }, [
      field(t('regions.cloud'), select('cloud_account_id', clouds.map((c) => [c.id, `${c.name} (${t(`provider.${c.provider}`)})`])), { required: true }),
      field(t('regions.code'), input('code', { required: true, placeholder: 'ap-shanghai', spellcheck: 'false' }), { required: true }),
      field(t('regions.displayName'), input('display_name', { placeholder: 'Shanghai' }), { optional: true }),
      checkbox('enabled', t('regions.enabled'), true),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'region-submit' }, t('common.create'))),
    ], async (v, el) => {
      const body = { cloud_account_id: v.cloud_account_id, code: v.code, enabled: v.enabled };
      if (v.display_name) body.display_name = v.display_name;
      const created = await api('POST', '/regions', body);
      el.reset();
      toast(t('regions.created', { name: created.code }));
      onCreated();
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Clusters.
  // ---------------------------------------------------------------------------------------------------------
  function clusterColumns(regions) {
    return [
      { label: t('common.name'), cell: (c) => link(`#/clusters/${enc(c.id)}`, c.name, { class: 'strong' }) },
      { label: t('common.region'), cell: (c) => orDash(regionLabel(regions.get(c.region_id)) || c.region_code) },
      { label: t('common.status'), cell: (c) => badge(c.status) },
      { label: t('clusters.agent'), cell: (c) => agentBadge(c.agent) },
      { label: t('clusters.heartbeat'), cell: (c) => timeEl(c.agent && c.agent.last_heartbeat_at) },
      { label: t('clusters.agentVersion'), cell: (c) => orDash(c.agent && c.agent.version) },
      { label: t('clusters.certExpiry'), cell: (c) => timeEl(c.agent && c.agent.certificate_expires_at) },
    ];
  }

  async function pageClusters(ctx, page) {
    const list = h('div');
    const pager = { page: 0 };
    let regions = [];
    const load = () => fill(list, async () => {
      const [clusters, regs] = await getAll(['/clusters', '/regions']);
      regions = regs;
      return clusters;
    }, (clusters) => table(clusterColumns(byId(regions)), clusters, { pager, rowAttrs: (c) => ({ 'data-testid': `cluster-row-${c.name}` }) }));
    const aside = can('operator') ? h('div') : null;
    page.append(pageHead(t('nav.clusters'), button(t('common.refresh'), () => load(), { class: 'btn btn-small' })),
      split(card(t('clusters.list'), list), aside && card(t('clusters.register'), aside)));
    await load();
    if (aside) put(aside, clusterForm(regions));
    ctx.every(10000, load);
  }

  function clusterForm(regions) {
    if (!regions.length) return h('p', { class: 'muted' }, t('clusters.noRegions'), ' ', link('#/regions', t('nav.regions')));
    return form({ 'data-testid': 'cluster-form' }, [
      field(t('common.name'), input('name', { required: true, placeholder: 'shanghai-1', spellcheck: 'false' }), { required: true }),
      field(t('common.region'), select('region_id', regions.map((r) => [r.id, `${regionLabel(r)} (${r.code})`])), { required: true }),
      field(t('clusters.roleField'), select('role', [['user', t('clusters.role.user')], ['management', t('clusters.role.management')]])),
      field(t('clusters.mode'), select('mode', [['manual', t('clusters.mode.manual')], ['terraform', t('clusters.mode.terraform')]])),
      field(t('clusters.apiEndpoint'), input('api_endpoint', { placeholder: 'https://10.0.0.10:6443', spellcheck: 'false' }), { optional: true }),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'cluster-submit' }, t('common.create'))),
    ], async (v) => {
      const body = { name: v.name, region_id: v.region_id, role: v.role };
      if (v.api_endpoint) body.api_endpoint = v.api_endpoint;
      if (v.mode === 'terraform') { body.provision = {}; body.plan_only = true; }
      const created = await api('POST', '/clusters', body);
      toast(t('clusters.created', { name: created.name }));
      location.hash = `#/clusters/${enc(created.id)}`;
    });
  }

  /** Plan summary of a terraform task's output: text, counts and the changed resources. */
  function planSummary(task) {
    const plan = task && task.output && task.output.plan;
    if (!plan) return null;
    const changes = Array.isArray(plan.resource_changes) ? plan.resource_changes : [];
    return h('div', { class: 'plan-summary', 'data-testid': 'plan-summary' },
      h('p', { class: 'plan-text' }, String(plan.text || '')),
      changes.length ? h('ul', { class: 'plan-changes' }, changes.map((c) => h('li', null,
        h('span', { class: `plan-action plan-${c.action}` }, String(c.action)), h('code', null, String(c.address))))) : null);
  }

  /** Polls a task every second until it finishes, showing state, error, plan summary and its log lines. */
  function taskTracker(ctx, task, title, onFinish) {
    const head = h('div', { class: 'tracker-head' });
    const extra = h('div');
    const logs = taskLogView(task.id);
    const el = card(title, [head, extra, logs.el], { class: 'tracker', testid: 'task-tracker', actions: link(`#/tasks/${enc(task.id)}`, t('task.open')) });
    let done = false;
    const draw = (tk) => {
      put(head, badge(tk.state, { 'data-testid': 'tracker-state' }),
        h('span', { class: 'muted small' }, `${tk.kind} · ${t('task.attempts')} ${tk.attempts ?? 0}/${tk.max_attempts ?? '?'}`),
        FINISHED.has(tk.state) ? null : h('span', { class: 'spinner' }));
      put(extra, tk.error ? alertBox('error', tk.error) : '', planSummary(tk) || '',
        tk.output && tk.output.drift ? props([[t('clusters.drift'), badge(tk.output.drift)]]) : '');
    };
    draw(task);
    ctx.poll(1000, async () => {
      const [tk] = await Promise.all([api('GET', `/tasks/${enc(task.id)}`), logs.poll()]);
      draw(tk);
      if (FINISHED.has(tk.state) && !done) {
        done = true;
        // In the same turn as the draw: whatever the result enables (e.g. the plan in the provision dialog)
        // is ready by the time a person can click on what it shows.
        if (onFinish) onFinish(tk);
        await logs.poll();
        return false;
      }
      return true;
    });
    return el;
  }

  /** A task's log lines, read with `after` = the last page's next_after (nanoseconds, kept as a string). */
  function taskLogView(taskId) {
    const box = h('div', { class: 'logview logview-task', 'data-testid': 'task-logs' }, h('div', { class: 'muted small log-empty' }, t('task.noLogs')));
    let after = null;
    return {
      el: box,
      async poll() {
        const data = await api('GET', `/tasks/${enc(taskId)}/logs${qs({ after, limit: 1000 })}`);
        const lines = (data && data.lines) || [];
        if (lines.length) {
          const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 24;
          const empty = box.querySelector('.log-empty');
          if (empty) empty.remove();
          for (const line of lines) box.append(logLineEl(line));
          if (stick) box.scrollTop = box.scrollHeight;
        }
        if (data && data.next_after != null) after = data.next_after;
        else if (lines.length && lines[lines.length - 1].ts_nanos != null) after = lines[lines.length - 1].ts_nanos;
      },
    };
  }

  function logLineEl(line) {
    const where = [line.pod, line.container].filter(Boolean).join('/') || line.source || '';
    return h('div', { class: `log-line log-${line.level || 'info'}`, 'data-testid': 'log-line', 'data-level': line.level || '' },
      h('time', { class: 'log-time', datetime: line.time || '', title: fmtTime(line.time) }, fmtClock(line.time)),
      levelBadge(line.level),
      where ? h('span', { class: 'log-src' }, where) : null,
      h('span', { class: 'log-msg' }, String(line.message ?? '')));
  }

  async function pageCluster(ctx, page, [id]) {
    const head = h('div', null, loadingEl());
    const info = h('div', { class: 'grid-2' });
    const actions = h('div', { class: 'page-toolbar' });
    const trackers = h('div', { class: 'trackers' });
    const sessions = h('div');
    const tasks = h('div');
    let cluster = null;
    let lastPlan = null;
    let regions = new Map();
    page.append(head, actions, trackers, info, sessions, tasks);

    const loadCluster = async () => {
      cluster = await api('GET', `/clusters/${enc(id)}`);
      drawCluster();
    };
    const loadTasks = () => fill(tasks, () => api('GET', `/tasks${qs({ cluster_id: id, limit: 20 })}`), (list) => {
      if (!lastPlan) lastPlan = list.find((x) => x.kind === 'terraform_plan' && x.state === 'succeeded') || null;
      return card(t('clusters.recentTasks'), taskTable(list, null));
    });

    const drawCluster = () => {
      const c = cluster;
      const a = c.agent || {};
      const region = regions.get(c.region_id);
      put(head, pageHead(c.name, badge(c.status, { 'data-testid': 'cluster-status' })),
        c.status_message ? alertBox(c.status === 'failed' || c.status === 'degraded' ? 'error' : 'info', c.status_message) : '');
      setTitle(`${t('nav.clusters')} / ${c.name}`);
      put(info, 
        card(t('common.details'), props([
          [t('common.region'), regionLabel(region) || c.region_code],
          [t('clusters.roleField'), c.role],
          [t('clusters.provisioning'), badge(c.provisioning)],
          [t('clusters.apiEndpoint'), c.api_endpoint ? h('code', null, c.api_endpoint) : null],
          [t('clusters.externalIp'), c.external_ip],
          [t('clusters.drift'), c.drift_status ? badge(c.drift_status) : null],
          [t('clusters.driftChecked'), c.drift_checked_at ? timeEl(c.drift_checked_at) : null],
          [t('common.created'), timeEl(c.created_at, false)],
        ])),
        card(t('clusters.agent'), props([
          [t('common.status'), agentBadge(a)],
          [t('clusters.heartbeat'), a.last_heartbeat_at ? timeEl(a.last_heartbeat_at) : null],
          [t('clusters.agentVersion'), a.version],
          [t('clusters.k8sVersion'), a.kubernetes_version],
          [t('clusters.nodes'), a.node_count != null ? String(a.node_count) : null],
          [t('clusters.k8sReachable'), a.kubernetes_reachable == null ? null : t(a.kubernetes_reachable ? 'common.yes' : 'common.no')],
          a.kubernetes_error ? [t('clusters.k8sError'), h('span', { class: 'text-bad' }, a.kubernetes_error)] : null,
          [t('clusters.rtt'), a.rtt_ms != null ? `${Number(a.rtt_ms).toFixed(1)} ms` : null],
          [t('clusters.certExpiry'), a.certificate_expires_at ? timeEl(a.certificate_expires_at) : null],
        ])));
      put(sessions, card(t('clusters.sessions'), table([
        { label: t('clusters.agentVersion'), cell: (s) => orDash(s.agent_version) },
        { label: t('clusters.peer'), cell: (s) => orDash(s.peer_addr) },
        { label: t('clusters.connectedAt'), cell: (s) => timeEl(s.connected_at) },
        { label: t('clusters.lastSeen'), cell: (s) => timeEl(s.last_seen_at) },
        { label: t('clusters.disconnectedAt'), cell: (s) => (s.disconnected_at ? timeEl(s.disconnected_at) : badge('connected')) },
      ], c.sessions || [])));
    };

    const track = (task, title, after) => {
      trackers.prepend(taskTracker(ctx, task, title, (done) => {
        if (after) after(done);
        loadCluster().catch(reportError);
        loadTasks();
      }));
    };
    const terraform = (kind, title, after) => async () => {
      const task = await api('POST', `/clusters/${enc(id)}/${kind}`, {});
      track(task, title, after);
    };
    const provision = async () => {
      // A plan that finished since the page loaded its task list is looked up, so the dialog never claims there is none.
      if (!lastPlan) {
        const list = await api('GET', `/tasks${qs({ cluster_id: id, limit: 20 })}`);
        lastPlan = list.find((x) => x.kind === 'terraform_plan' && x.state === 'succeeded') || null;
      }
      const ok = await confirmDialog({
        title: t('clusters.provisionTitle', { name: cluster.name }),
        body: [h('p', null, t('clusters.provisionBody')), lastPlan ? [h('h3', null, t('clusters.planSummary')), planSummary(lastPlan)] : alertBox('warn', t('clusters.noPlan'))],
        ok: t('clusters.provision'),
      });
      if (ok) await terraform('provision', t('clusters.provisionTask'))();
    };
    const destroy = async () => {
      const ok = await confirmDialog({ title: t('clusters.destroyTitle', { name: cluster.name }), body: h('p', null, t('clusters.destroyBody')), ok: t('clusters.destroy'), danger: true, typed: cluster.name });
      if (!ok) return;
      const res = await api('DELETE', `/clusters/${enc(id)}`);
      if (res && res.id) {
        toast(t('clusters.destroyQueued', { name: cluster.name }));
        track(res, t('clusters.destroyTask'));
      } else {
        toast(t('clusters.deleted', { name: cluster.name }));
        location.hash = '#/clusters';
      }
    };
    const bootstrap = async () => {
      const res = await api('POST', `/clusters/${enc(id)}/bootstrap-tokens`, {});
      const install = res.install || {};
      trackers.prepend(secretPanel(t('clusters.tokenTitle'), res.token, 'bootstrap-token',
        h('p', { class: 'muted small' }, t('clusters.tokenExpires', { time: fmtTime(res.expires_at) })),
        install.manifest ? [h('h3', null, t('clusters.installManifest')), copyBox(install.manifest, 'install-manifest')] : null,
        install.command ? [h('h3', null, t('clusters.installCommand')), copyBox(install.command, 'install-command')] : null));
    };

    const drawActions = () => {
      if (!can('operator')) return;
      put(actions, h('div', { class: 'toolbar' },
        actionButton(t('clusters.plan'), terraform('plan', t('clusters.planTask'), (tk) => { if (tk.state === 'succeeded') lastPlan = tk; }), { class: 'btn', 'data-testid': 'cluster-plan' }),
        actionButton(t('clusters.provision'), provision, { class: 'btn btn-primary', 'data-testid': 'cluster-provision' }),
        actionButton(t('clusters.driftCheck'), terraform('drift-check', t('clusters.driftTask')), { class: 'btn', 'data-testid': 'cluster-drift' }),
        actionButton(t('clusters.bootstrap'), bootstrap, { class: 'btn', 'data-testid': 'cluster-bootstrap' }),
        h('span', { class: 'spacer' }),
        actionButton(t('clusters.destroy'), destroy, { class: 'btn btn-danger', 'data-testid': 'cluster-destroy' })),
      cluster.provisioning === 'manual' ? h('p', { class: 'muted small' }, t('clusters.manualHint')) : null);
    };

    try {
      const [regs] = await getAll(['/regions']);
      regions = byId(regs);
      await loadCluster();
    } catch (err) {
      put(head, pageHead(t('nav.clusters')), errorBlock(err, route));
      return;
    }
    drawActions();
    loadTasks();
    ctx.every(10000, () => loadCluster().catch(() => {}));
  }

  // ---------------------------------------------------------------------------------------------------------
  // Templates.
  // ---------------------------------------------------------------------------------------------------------
  async function pageTemplates(ctx, page) {
    const list = h('div');
    page.append(pageHead(t('nav.templates')), card(t('templates.list'), list));
    await fill(list, () => api('GET', '/templates'), (templates) => table([
      { label: t('common.name'), cell: (x) => link(`#/templates/${enc(x.name)}`, x.name, { class: 'strong' }) },
      { label: t('templates.version'), cell: (x) => orDash(x.version) },
      { label: t('templates.revision'), cell: (x) => String(x.revision ?? ''), class: 'num' },
      { label: t('templates.title'), cell: (x) => orDash(x.title) },
      { label: t('templates.runtime'), cell: (x) => h('code', null, x.runtime || '') },
      { label: t('templates.port'), cell: (x) => String(x.port ?? ''), class: 'num' },
      { label: t('templates.health'), cell: (x) => h('code', null, x.health_check_path || '') },
      { label: t('templates.imageRequired'), cell: (x) => (x.image_required ? h('span', { class: 'badge badge-amber' }, t('common.yes')) : h('span', { class: 'muted' }, t('common.no'))) },
    ], templates, { rowAttrs: (x) => ({ 'data-testid': `template-row-${x.name}` }), empty: t('demos.noTemplates') }));
  }

  function resourcesView(resources) {
    if (!resources || typeof resources !== 'object') return dash();
    const rows = [];
    for (const kind of ['requests', 'limits']) {
      const r = resources[kind];
      if (r && typeof r === 'object') rows.push([t(`templates.${kind}`), Object.entries(r).map(([k, v]) => `${k}: ${v}`).join(', ')]);
    }
    return rows.length ? props(rows) : h('pre', { class: 'code' }, JSON.stringify(resources, null, 2));
  }

  async function pageTemplate(ctx, page, [name]) {
    const body = h('div', null, loadingEl());
    page.append(pageHead(`${t('nav.templates')} / ${name}`, link('#/templates', t('common.back'), { class: 'btn btn-small' })), body);
    await fill(body, () => api('GET', `/templates/${enc(name)}`), (revisions) => {
      const x = revisions.find((r) => r.latest) || revisions[0];
      if (!x) return alertBox('info', t('common.empty'));
      return [
        h('div', { class: 'grid-2' },
          card(x.title || x.name, [
            x.description ? h('p', null, x.description) : null,
            props([
              [t('templates.version'), `${x.version} (r${x.revision})`],
              [t('templates.runtime'), h('code', null, x.runtime || '')],
              [t('templates.process'), x.process ? h('code', null, x.process) : null],
              [t('templates.port'), String(x.port ?? '')],
              [t('templates.health'), h('code', null, x.health_check_path || '')],
              [t('templates.imageRequired'), t(x.image_required ? 'common.yes' : 'common.no')],
              [t('templates.defaultImage'), x.default_image ? h('code', null, x.default_image) : null],
              [t('templates.loaded'), timeEl(x.loaded_at)],
            ])]),
          card(t('templates.resources'), resourcesView(x.resources))),
        card(t('templates.env'), table([
          { label: t('common.name'), cell: (e) => h('code', null, e.name) },
          { label: t('templates.envDefault'), cell: (e) => (e.default ? h('code', null, e.default) : dash()) },
          { label: t('templates.envRequired'), cell: (e) => t(e.required ? 'common.yes' : 'common.no') },
          { label: t('templates.envDescription'), cell: (e) => orDash(e.description) },
        ], x.env || [])),
        x.dockerfile ? card(t('templates.dockerfile'), h('pre', { class: 'code' }, x.dockerfile)) : null,
        card(t('templates.revisions'), table([
          { label: t('templates.revision'), cell: (r) => h('span', null, `r${r.revision}`, r.latest ? h('span', { class: 'badge badge-small badge-blue' }, t('templates.latest')) : null) },
          { label: t('templates.version'), cell: (r) => orDash(r.version) },
          { label: 'sha256', cell: (r) => h('code', { class: 'clip' }, (r.content_sha256 || '').slice(0, 16)) },
          { label: t('templates.loaded'), cell: (r) => timeEl(r.loaded_at) },
        ], revisions)),
      ];
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Demos: list, one-click deploy, demo page with live steps and logs.
  // ---------------------------------------------------------------------------------------------------------
  async function pageDemos(ctx, page) {
    const list = h('div');
    const aside = can('operator') ? h('div', null, loadingEl()) : null;
    const pager = { page: 0 };
    let regions = new Map();
    const load = () => fill(list, async () => {
      const [demos, regs] = await getAll(['/demos', '/regions']);
      regions = byId(regs);
      return demos;
    }, (demos) => table([
      { label: t('common.name'), cell: (d) => link(`#/demos/${enc(d.id)}`, d.name, { class: 'strong' }) },
      { label: t('common.status'), cell: (d) => badge(d.status) },
      { label: t('common.region'), cell: (d) => orDash(regionLabel(regions.get(d.region_id)) || d.requested_region) },
      { label: t('demos.currentStep'), cell: (d) => (d.current_step ? t(`step.${d.current_step}`) : dash()) },
      { label: t('demos.url'), cell: (d) => (d.url ? externalLink(d.url) : dash()) },
      { label: t('common.updated'), cell: (d) => timeEl(d.updated_at) },
    ], demos, { pager, empty: t('demos.noDemos'), rowAttrs: (d) => ({ 'data-testid': `demo-row-${d.name}` }) }));
    page.append(pageHead(t('nav.demos'), button(t('common.refresh'), () => load(), { class: 'btn btn-small' })),
      split(card(t('demos.list'), list), aside && card(t('demos.deploy'), aside, { class: 'deploy-card' })));
    if (aside) fill(aside, () => getAll(['/templates', '/regions']), ([templates, regs]) => deployForm(templates, regs));
    await load();
    ctx.every(10000, load);
  }

  function deployForm(templates, regions) {
    if (!templates.length) return h('p', { class: 'muted' }, t('demos.noTemplates'));
    let idempotencyKey = randomKey();
    const tpl = select('template', templates.map((x) => [x.name, x.title ? `${x.title} (${x.name})` : x.name]), { 'data-testid': 'deploy-template' });
    const image = input('image', { spellcheck: 'false', placeholder: 'registry.example.com/app:1.0' });
    const imageField = field(t('demos.image'), image);
    const env = envEditor();
    const current = () => templates.find((x) => x.name === tpl.value);
    const onTemplate = () => {
      const x = current();
      image.placeholder = x && x.default_image ? x.default_image : 'registry.example.com/app:1.0';
      image.required = !!(x && x.image_required);
      imageField.classList.toggle('is-required', image.required);
      const hint = imageField.querySelector('.hint') || imageField.appendChild(h('div', { class: 'hint' }));
      hint.textContent = image.required ? t('demos.imageRequired') : (x && x.default_image ? t('demos.imageDefault', { image: x.default_image }) : '');
      env.setSuggestions((x && x.env) || []);
    };
    tpl.addEventListener('change', onTemplate);
    onTemplate();
    const regionOptions = [['auto', t('demos.auto')], ...regions.filter((r) => r.enabled).map((r) => [r.id, `${regionLabel(r)} (${r.code})`])];
    return form({ 'data-testid': 'deploy-form' }, [
      field(t('common.name'), input('name', { required: true, maxlength: 40, placeholder: 'hello-ml', spellcheck: 'false' }), { required: true }),
      field(t('demos.template'), tpl, { required: true }),
      imageField,
      field(t('demos.region'), select('region', regionOptions, { 'data-testid': 'deploy-region' }), { required: true }),
      field(t('demos.env'), env.el),
      field(t('demos.replicas'), input('replicas', { type: 'number', min: 0, max: 20, value: '1' })),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'deploy-submit' }, t('demos.submit'))),
    ], async (v) => {
      const body = { name: v.name, template: v.template, region: v.region, env: env.value(), idempotency_key: idempotencyKey };
      if (v.image) body.image = v.image;
      if (v.replicas !== '') body.replicas = Number(v.replicas);
      const demo = await api('POST', '/demos', body);
      idempotencyKey = randomKey();
      location.hash = `#/demos/${enc(demo.id)}`;
    });
  }

  const STEP_ICON = { pending: '', running: '', succeeded: '✓', failed: '✕' };

  /** The vertical stepper; update({step, state, message}) changes one item in place. */
  function stepperView(steps) {
    const items = new Map();
    const list = h('ol', { class: 'stepper', 'data-testid': 'demo-steps' });
    const set = (item, s, index) => {
      item.li.dataset.state = s.state;
      item.li.className = `step step-${s.state}`;
      put(item.icon, s.state === 'running' ? h('span', { class: 'spinner spinner-small' }) : (STEP_ICON[s.state] || String(index + 1)));
      item.stateEl.textContent = tStatus(s.state);
      if (s.attempt && s.attempt > 1) item.stateEl.textContent += ` · ${t('step.attempt', { n: s.attempt })}`;
      if (s.finished_at || s.started_at) put(item.time, ' · ', timeEl(s.finished_at || s.started_at));
      item.message.textContent = s.message || '';
      item.message.hidden = !s.message;
    };
    [...steps].sort((a, b) => a.position - b.position).forEach((s, index) => {
      const item = {
        li: h('li', { 'data-testid': `step-${s.name}` }),
        icon: h('span', { class: 'step-icon', 'aria-hidden': 'true' }),
        stateEl: h('span', { class: 'step-state' }),
        time: h('span', { class: 'step-time' }),
        message: h('p', { class: 'step-message' }),
        index,
      };
      item.li.append(item.icon, h('div', { class: 'step-body' },
        h('div', { class: 'step-title' }, t(`step.${s.name}`), h('code', { class: 'step-name' }, s.name)),
        h('div', { class: 'step-meta' }, item.stateEl, item.time), item.message));
      set(item, s, index);
      items.set(s.name, item);
      list.append(item.li);
    });
    return {
      el: list,
      has: (name) => items.has(name),
      update(s) { const item = items.get(s.step); if (item) set(item, { ...s, name: s.step }, item.index); },
    };
  }

  async function pageDemo(ctx, page, [id]) {
    const head = h('div', null, loadingEl());
    const stepsBox = h('div');
    const actionsBox = h('div');
    const infoBox = h('div');
    const versionsBox = h('div');
    const logsBox = h('div');
    let demo = null;
    let stepper = null;
    let events = null;
    let versions = [];
    let names = { templates: new Map(), regions: new Map(), clusters: new Map() };
    page.append(head, h('div', { class: 'demo-grid' },
      h('div', { class: 'demo-main' }, stepsBox, actionsBox, versionsBox),
      h('div', { class: 'demo-side' }, infoBox)), logsBox);

    const drawHead = () => {
      const d = demo;
      put(head, 
        pageHead(d.name, badge(d.status, { 'data-testid': 'demo-status' })),
        h('div', { class: 'demo-url-bar' }, h('span', { class: 'label' }, t('demos.url')),
          d.url ? externalLink(d.url, { 'data-testid': 'demo-url' }) : h('span', { class: 'muted', 'data-testid': 'demo-url' }, t('demos.noUrl'))),
        d.error ? alertBox('error', h('span', { 'data-testid': 'demo-error' }, d.error)) : null,
        d.deleted_at ? alertBox('info', t('demos.closedNote')) : null);
      setTitle(`${t('nav.demos')} / ${d.name}`);
    };
    const drawInfo = () => {
      const d = demo;
      const tpl = names.templates.get(d.template_id);
      const cfg = d.config || {};
      put(infoBox, card(t('common.details'), props([
        [t('demos.template'), tpl ? link(`#/templates/${enc(tpl.name)}`, `${tpl.name} r${tpl.revision}`) : d.template_id],
        [t('demos.image'), h('code', { class: 'break' }, d.image || '')],
        [t('common.region'), regionLabel(names.regions.get(d.region_id)) || d.requested_region],
        [t('demos.regionReason'), d.region_reason],
        [t('common.cluster'), d.cluster_id ? clusterLink(d.cluster_id, names.clusters) : null],
        [t('demos.version'), String(d.version)],
        [t('demos.replicas'), cfg.replicas != null ? String(cfg.replicas) : null],
        [t('demos.env'), cfg.env && Object.keys(cfg.env).length ? h('div', { class: 'chips' }, Object.entries(cfg.env).map(([k, v]) => h('code', { class: 'chip' }, `${k}=${v}`))) : null],
        [t('demos.owner'), d.owner],
        [t('common.created'), timeEl(d.created_at)],
        [t('common.updated'), timeEl(d.updated_at)],
      ])));
    };
    const drawSteps = () => {
      stepper = stepperView(demo.steps || []);
      put(stepsBox, card(`${t('demos.steps')} · v${demo.version}`, stepper.el));
    };
    const drawVersions = () => {
      put(versionsBox, card(t('demos.versions'), table([
        { label: t('demos.version'), cell: (v) => h('span', null, `v${v.version}`, v.version === demo.version ? h('span', { class: 'badge badge-small badge-blue' }, t('demos.current')) : null) },
        { label: t('demos.versionReason'), cell: (v) => orDash(v.reason) },
        { label: t('demos.image'), cell: (v) => h('code', { class: 'clip' }, v.image || '') },
        { label: t('demos.replicas'), cell: (v) => orDash(v.config && v.config.replicas), class: 'num' },
        { label: t('task.createdBy'), cell: (v) => orDash(v.created_by) },
        { label: t('common.created'), cell: (v) => timeEl(v.created_at) },
      ], versions, { pageSize: 10 })));
    };
    const drawAll = () => { drawHead(); drawInfo(); drawSteps(); drawActions(); };

    let refreshing = null;
    let again = false;
    const refresh = async () => {
      if (refreshing) { again = true; return refreshing; }
      refreshing = (async () => {
        do {
          again = false;
          const [d, vs] = await Promise.all([api('GET', `/demos/${enc(id)}`), api('GET', `/demos/${enc(id)}/versions`).catch(() => versions)]);
          demo = d;
          versions = vs;
          drawAll();
          drawVersions();
        } while (again && ctx.alive);
      })().finally(() => { refreshing = null; });
      return refreshing;
    };
    const follow = () => {
      if (events || demo.status === 'closed') return;
      events = ctx.stream(`/api/v1/demos/${enc(id)}/events`, {
        step: (s) => {
          if (s.version > demo.version || !stepper.has(s.step)) { refresh().catch(reportError); return; }
          if (s.version === demo.version) {
            stepper.update(s);
            const known = (demo.steps || []).find((x) => x.name === s.step);
            if (known) Object.assign(known, { state: s.state, message: s.message });
            drawActions();
          }
        },
        demo: (d) => {
          if (d.version > demo.version) { refresh().catch(reportError); return; }
          Object.assign(demo, { status: d.status, current_step: d.current_step, url: d.url, error: d.error });
          drawHead();
          drawActions();
        },
        done: () => {
          if (events) events.close();
          events = null;
          refresh().catch(reportError);
        },
        onerror: (ev, es) => {
          // The server ends the stream after `done`; anything else is a dropped connection: reopen later.
          if (es.readyState === EventSource.CLOSED && events === es) { events = null; ctx.later(3000, follow); }
        },
      });
    };
    const act = async (path, body) => {
      const d = await api('POST', `/demos/${enc(id)}/${path}`, body);
      toast(t('demos.queued', { v: d.version }));
      demo = d;
      drawAll();
      follow();
      refresh().catch(reportError);
    };

    const drawActions = () => {
      if (!can('operator') || !demo) return;
      const d = demo;
      if (d.status === 'closed' || d.deleted_at) { put(actionsBox); return; }
      const deleting = !!d.delete_requested_at;
      const failedStep = (d.steps || []).some((s) => s.state === 'failed');
      const replicas = d.config && d.config.replicas;
      const stopped = d.status === 'offline' || replicas === 0;
      const others = versions.filter((v) => v.version !== d.version && v.reason !== 'delete');
      const rollbackSel = select('version', others.map((v) => [String(v.version), `v${v.version}${v.reason ? ' · ' + v.reason : ''}`]), { 'data-testid': 'rollback-version', 'aria-label': t('demos.rollbackTo') });
      const updatePanel = h('div', { class: 'update-panel', hidden: true });
      const toolbar = h('div', { class: 'toolbar' },
        deleting ? null : button(t('demos.update'), () => {
          updatePanel.hidden = !updatePanel.hidden;
          if (!updatePanel.hidden && !updatePanel.firstChild) updatePanel.append(updateForm());
        }, { class: 'btn', 'data-testid': 'demo-update' }),
        !deleting && others.length ? h('span', { class: 'inline-group' }, rollbackSel,
          actionButton(t('demos.rollback'), async () => {
            const v = Number(rollbackSel.value);
            if (await confirmDialog({ title: t('demos.rollbackTitle', { v }), body: null })) await act('rollback', { version: v });
          }, { class: 'btn', 'data-testid': 'demo-rollback' })) : null,
        deleting ? null : stopped
          ? actionButton(t('demos.start'), () => act('start'), { class: 'btn', 'data-testid': 'demo-start' })
          : actionButton(t('demos.stop'), async () => {
            if (await confirmDialog({ title: t('demos.stopTitle', { name: d.name }), body: h('p', null, t('demos.stopBody')), ok: t('demos.stop') })) await act('stop');
          }, { class: 'btn', 'data-testid': 'demo-stop' }),
        failedStep ? actionButton(t('demos.retry'), () => act('retry'), { class: 'btn btn-primary', 'data-testid': 'demo-retry' }) : null,
        h('span', { class: 'spacer' }),
        deleting ? null : actionButton(t('common.delete'), async () => {
          const ok = await confirmDialog({ title: t('demos.deleteTitle', { name: d.name }), body: h('p', null, t('demos.deleteBody')), ok: t('common.delete'), danger: true });
          if (!ok) return;
          demo = await api('DELETE', `/demos/${enc(id)}`);
          toast(t('demos.deleting'));
          drawAll();
          follow();
        }, { class: 'btn btn-danger', 'data-testid': 'demo-delete' }));
      put(actionsBox, card(t('common.actions'), [toolbar, updatePanel]));
    };
    const updateForm = () => {
      const cfg = demo.config || {};
      const env = envEditor(cfg.env || {});
      return form({ 'data-testid': 'update-form', class: 'form form-inline-card' }, [
        h('h3', null, t('demos.updateTitle')),
        field(t('demos.image'), input('image', { value: demo.image || '', spellcheck: 'false' })),
        field(t('demos.env'), env.el),
        field(t('demos.replicas'), input('replicas', { type: 'number', min: 0, max: 20, value: cfg.replicas != null ? String(cfg.replicas) : '' })),
        h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'update-submit' }, t('demos.update'))),
      ], async (v) => {
        const body = {};
        if (v.image && v.image !== demo.image) body.image = v.image;
        const newEnv = env.value();
        if (JSON.stringify(newEnv) !== JSON.stringify(cfg.env || {})) body.env = newEnv;
        if (v.replicas !== '' && Number(v.replicas) !== cfg.replicas) body.replicas = Number(v.replicas);
        await act('update', body);
      });
    };

    try {
      await refresh();
    } catch (err) {
      put(head, pageHead(t('nav.demos')), errorBlock(err, route));
      return;
    }
    follow();
    getAll(['/templates?all=true', '/regions', '/clusters']).then(([tpls, regs, cls]) => {
      names = { templates: byId(tpls), regions: byId(regs), clusters: byId(cls) };
      if (ctx.alive) drawInfo();
    }).catch(() => {});
    logsBox.append(demoLogsPanel(ctx, id));
  }

  /** Logs of one demo: live tail (SSE) or a page query, with window, level and text filters. */
  function demoLogsPanel(ctx, demoId) {
    const view = h('div', { class: 'logview', 'data-testid': 'demo-logs' });
    const status = h('span', { class: 'muted small' });
    const level = select('level', [['', t('logs.anyLevel')], ...['debug', 'info', 'warn', 'error'].map((l) => [l, t(`level.${l}`)])], { 'aria-label': t('demos.minLevel'), 'data-testid': 'demo-logs-level' });
    const text = h('input', { class: 'input', type: 'search', placeholder: t('demos.filterText'), 'aria-label': t('demos.filterText'), 'data-testid': 'demo-logs-q' });
    const windowSel = select('window', [['15m', t('demos.window.15m')], ['1h', t('demos.window.1h')], ['24h', t('demos.window.24h')], ['all', t('demos.window.all')]], { value: '1h', 'aria-label': t('demos.window') });
    const live = h('input', { type: 'checkbox', checked: true, 'data-testid': 'demo-logs-live' });
    const WINDOWS = { '15m': 900e3, '1h': 3600e3, '24h': 86400e3 };
    const MAX_LINES = 1000;
    let es = null;
    let lastId = null;
    let gen = 0;

    const params = () => ({
      level: level.value, q: text.value.trim(),
      since: WINDOWS[windowSel.value] ? new Date(Date.now() - WINDOWS[windowSel.value]).toISOString() : undefined,
    });
    const add = (line) => {
      const stick = view.scrollTop + view.clientHeight >= view.scrollHeight - 24;
      const empty = view.querySelector('.log-empty');
      if (empty) empty.remove();
      view.append(logLineEl(line));
      while (view.childElementCount > MAX_LINES) view.firstElementChild.remove();
      if (stick) view.scrollTop = view.scrollHeight;
    };
    const stop = () => { if (es) es.close(); es = null; };
    const tail = (cursor) => {
      stop();
      const my = gen;
      es = ctx.stream(`/api/v1/demos/${enc(demoId)}/logs${qs({ ...params(), follow: true, cursor })}`, {
        line: (line, ev) => { if (my === gen) { lastId = ev.lastEventId || lastId; add(line); } },
        onerror: (ev, source) => {
          if (ev.data) status.textContent = String(ev.data);
          // EventSource would reconnect from the start and repeat lines: reconnect ourselves from the cursor.
          source.close();
          if (my === gen && live.checked) { status.textContent = t('err.stream'); ctx.later(3000, () => { if (my === gen) tail(lastId || undefined); }); }
        },
      });
      es.onopen = () => { if (my === gen) status.textContent = t('logs.liveOn'); };
    };
    const query = async () => {
      const my = gen;
      try {
        const data = await api('GET', `/demos/${enc(demoId)}/logs${qs({ ...params(), limit: 500 })}`);
        if (my !== gen) return;
        for (const line of data.lines || []) add(line);
        status.textContent = t('logs.count', { n: (data.lines || []).length });
      } catch (err) { status.textContent = err.message; }
    };
    const apply = () => {
      gen++;
      stop();
      lastId = null;
      put(view, h('div', { class: 'muted small log-empty' }, t('demos.noLogs')));
      status.textContent = '';
      if (live.checked) tail(); else query();
    };
    let debounce = null;
    text.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(apply, 400); });
    ctx.onLeave(() => clearTimeout(debounce));
    for (const el of [level, windowSel, live]) el.addEventListener('change', apply);
    apply();
    return card(t('demos.logs'), [
      h('div', { class: 'toolbar log-toolbar' }, windowSel, level, text,
        h('label', { class: 'check' }, live, h('span', null, t('demos.live'))), h('span', { class: 'spacer' }), status),
      view,
    ], { class: 'logs-card' });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Tasks.
  // ---------------------------------------------------------------------------------------------------------
  const TASK_STATES = ['pending', 'leased', 'running', 'succeeded', 'failed', 'cancelled'];
  const TASK_PAGE = 25;

  function taskTable(tasks, clusters) {
    return table([
      { label: t('common.created'), cell: (x) => timeEl(x.created_at) },
      { label: t('task.kind'), cell: (x) => link(`#/tasks/${enc(x.id)}`, x.kind, { class: 'strong' }) },
      clusters && { label: t('common.cluster'), cell: (x) => clusterLink(x.cluster_id, clusters) },
      { label: t('task.state'), cell: (x) => badge(x.state) },
      { label: t('task.attempts'), cell: (x) => `${x.attempts ?? 0}/${x.max_attempts ?? '?'}`, class: 'num' },
      { label: t('task.reason'), cell: (x) => h('span', { class: 'clip', title: x.reason || '' }, orDash(x.reason)) },
      { label: t('task.error'), cell: (x) => (x.error ? h('span', { class: 'clip text-bad', title: x.error }, x.error) : dash()) },
    ].filter(Boolean), tasks, { pageSize: 1000, rowAttrs: (x) => ({ 'data-testid': 'task-row', 'data-state': x.state }) });
  }

  async function pageTasks(ctx, page, _args, query) {
    const offset = Math.max(0, Number(query.get('offset')) || 0);
    const stateFilter = query.get('state') || '';
    const clusterFilter = query.get('cluster_id') || '';
    const list = h('div', null, loadingEl());
    const [clusters] = await getAll(['/clusters']);
    const filters = form({ class: 'form filters', 'data-testid': 'task-filters' }, [
      field(t('tasks.filterState'), select('state', [['', t('common.all')], ...TASK_STATES.map((s) => [s, tStatus(s)])], { value: stateFilter })),
      field(t('tasks.filterCluster'), select('cluster_id', [['', t('common.all')], ...clusters.map((c) => [c.id, c.name])], { value: clusterFilter })),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, t('common.search'))),
    ], async (v) => setQuery({ state: v.state, cluster_id: v.cluster_id }));
    for (const s of filters.querySelectorAll('select')) s.addEventListener('change', () => filters.requestSubmit());
    page.append(pageHead(t('nav.tasks'), button(t('common.refresh'), () => load(), { class: 'btn btn-small' })), card(null, filters, { class: 'filters-card' }), card(null, list));
    const clusterMap = byId(clusters);
    const load = () => fill(list, () => api('GET', `/tasks${qs({ state: stateFilter, cluster_id: clusterFilter, limit: TASK_PAGE, offset })}`), (tasks) => [
      taskTable(tasks, clusterMap),
      pagerEl({
        from: offset + 1, to: offset + tasks.length, hasPrev: offset > 0, hasNext: tasks.length === TASK_PAGE,
        onPrev: () => setQuery({ state: stateFilter, cluster_id: clusterFilter, offset: Math.max(0, offset - TASK_PAGE) || undefined }),
        onNext: () => setQuery({ state: stateFilter, cluster_id: clusterFilter, offset: offset + TASK_PAGE }),
      }),
    ]);
    await load();
    ctx.every(10000, load);
  }

  async function pageTask(ctx, page, [id]) {
    const head = h('div', null, loadingEl());
    const body = h('div');
    const logs = taskLogView(id);
    page.append(head, body, card(t('task.logs'), logs.el, { class: 'logs-card' }));
    let clusters = new Map();
    getAll(['/clusters']).then(([cls]) => { clusters = byId(cls); }).catch(() => {});

    const draw = (x) => {
      put(head, pageHead(t('task.title', { id: x.id.slice(0, 8) }), badge(x.state, { 'data-testid': 'task-state' }),
        can('operator') && !FINISHED.has(x.state) ? actionButton(t('task.cancel'), async () => {
          if (!(await confirmDialog({ title: t('task.cancelTitle'), body: null, ok: t('task.cancel'), danger: true }))) return;
          draw(await api('POST', `/tasks/${enc(x.id)}/cancel`));
          toast(t('task.cancelled'));
        }, { class: 'btn btn-danger-ghost', 'data-testid': 'task-cancel' }) : null),
      x.error ? alertBox('error', h('span', { 'data-testid': 'task-error' }, x.error)) : null);
      const output = x.output && Object.keys(x.output).length ? x.output : null;
      put(body, 
        h('div', { class: 'grid-2' },
          card(t('common.details'), props([
            [t('task.kind'), h('code', null, x.kind)],
            [t('common.cluster'), clusterLink(x.cluster_id, clusters)],
            [t('task.state'), badge(x.state)],
            [t('task.attempts'), `${x.attempts ?? 0} / ${x.max_attempts ?? '?'}`],
            [t('task.reason'), x.reason],
            [t('task.createdBy'), x.created_by],
            [t('common.created'), timeEl(x.created_at, false)],
            [t('task.started'), x.started_at ? timeEl(x.started_at, false) : null],
            [t('task.finished'), x.finished_at ? timeEl(x.finished_at, false) : null],
            x.parent_id ? [t('common.details'), link(`#/tasks/${enc(x.parent_id)}`, x.parent_id.slice(0, 8))] : null,
          ])),
          card(t('task.output'), [planSummary(x), output ? h('details', null, h('summary', null, 'JSON'), h('pre', { class: 'code' }, JSON.stringify(output, null, 2))) : dash(),
            x.payload ? h('details', null, h('summary', null, t('task.payload')), h('pre', { class: 'code' }, JSON.stringify(x.payload, null, 2))) : null])),
        card(t('task.objects'), table([
          { label: '#', cell: (o) => String(o.document_index ?? ''), class: 'num' },
          { label: t('task.object.kind'), cell: (o) => h('code', null, `${o.api_version || ''} ${o.kind || ''}`.trim()) },
          { label: t('task.object.namespace'), cell: (o) => orDash(o.namespace) },
          { label: t('common.name'), cell: (o) => orDash(o.name) },
          { label: t('task.object.outcome'), cell: (o) => badge(o.outcome) },
          { label: t('common.message'), cell: (o) => orDash(o.message) },
        ], x.objects || [], { testid: 'task-objects' })),
        card(t('task.events'), table([
          { label: t('common.time'), cell: (e) => timeEl(e.at, false) },
          { label: t('task.kind'), cell: (e) => h('code', null, e.kind || '') },
          { label: t('common.message'), cell: (e) => orDash(e.message) },
        ], x.events || [])));
    };
    let finished = false;
    ctx.poll(1000, async () => {
      const [x] = await Promise.all([api('GET', `/tasks/${enc(id)}`), logs.poll()]);
      if (!ctx.alive) return false;
      draw(x);
      if (FINISHED.has(x.state)) {
        if (!finished) { finished = true; await logs.poll(); }
        return false;
      }
      return true;
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Logs across demos.
  // ---------------------------------------------------------------------------------------------------------
  async function pageLogs(ctx, page) {
    const [demos, clusters] = await getAll(['/demos', '/clusters']);
    const demoMap = byId(demos);
    const clusterMap = byId(clusters);
    const tbody = h('tbody');
    const status = h('span', { class: 'muted small' });
    const more = button(t('logs.loadMore'), () => runQuery(true), { class: 'btn', hidden: true, 'data-testid': 'logs-more' });
    const live = h('input', { type: 'checkbox', name: 'live', 'data-testid': 'logs-live' });
    let cursor = null;
    let es = null;
    let gen = 0;
    let count = 0;

    const row = (l) => h('tr', { 'data-testid': 'log-line', 'data-level': l.level || '' },
      h('td', { class: 'nowrap' }, h('time', { datetime: l.time || '', title: l.time || '' }, fmtTime(l.time))),
      h('td', null, levelBadge(l.level)),
      h('td', null, l.demo_id ? link(`#/demos/${enc(l.demo_id)}`, demoMap.get(l.demo_id) ? demoMap.get(l.demo_id).name : l.demo_id.slice(0, 8)) : dash()),
      h('td', null, l.cluster_id ? clusterLink(l.cluster_id, clusterMap) : dash(), l.region ? h('span', { class: 'muted small' }, ` · ${l.region}`) : null),
      h('td', { class: 'mono small' }, [l.pod, l.container].filter(Boolean).join('/') || t('common.none')),
      h('td', { class: 'log-msg' }, String(l.message ?? '')));
    const add = (lines) => {
      for (const l of lines) tbody.append(row(l));
      count += lines.length;
      while (tbody.childElementCount > 5000) tbody.firstElementChild.remove();
      status.textContent = t('logs.count', { n: count });
    };
    const filters = form({ class: 'form filters', 'data-testid': 'logs-filters' }, [
      field(t('common.since'), input('since', { type: 'datetime-local' })),
      field(t('common.until'), input('until', { type: 'datetime-local' })),
      field(t('common.level'), select('level', [['', t('logs.anyLevel')], ...['debug', 'info', 'warn', 'error'].map((l) => [l, t(`level.${l}`)])])),
      field(t('common.text'), input('q', { type: 'search', maxlength: 500 })),
      field(t('logs.demo'), select('demo_id', [['', t('logs.anyDemo')], ...demos.map((d) => [d.id, d.name])])),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'logs-search' }, t('common.search')),
        h('label', { class: 'check' }, live, h('span', null, t('logs.live')))),
    ], async () => { live.checked ? startTail() : await runQuery(false); });
    const params = () => {
      const v = formValues(filters);
      return { since: localInputToRfc3339(v.since), until: localInputToRfc3339(v.until), level: v.level, q: v.q, demo_id: v.demo_id };
    };
    const reset = () => { gen++; if (es) es.close(); es = null; cursor = null; count = 0; put(tbody); more.hidden = true; status.textContent = ''; };
    const runQuery = async (append) => {
      if (!append) reset();
      const my = gen;
      const data = await api('GET', `/logs${qs({ ...params(), cursor: append ? cursor : undefined, limit: 200 })}`);
      if (my !== gen) return;
      add(data.lines || []);
      cursor = data.next_cursor || null;
      more.hidden = !cursor;
    };
    const startTail = (resume) => {
      if (!resume) reset();
      const my = gen;
      const p = params();
      // Without a start time a tail would replay every stored line: follow from five minutes ago.
      if (!p.since && !resume) p.since = new Date(Date.now() - 300e3).toISOString();
      es = ctx.stream(`/api/v1/logs${qs({ ...p, until: undefined, follow: true, cursor: resume })}`, {
        line: (l, ev) => { if (my === gen) { cursor = ev.lastEventId || cursor; add([l]); } },
        onerror: (ev, source) => {
          source.close();
          if (my === gen && live.checked) { status.textContent = t('err.stream'); ctx.later(3000, () => { if (my === gen) startTail(cursor || undefined); }); }
        },
      });
      es.onopen = () => { if (my === gen) status.textContent = `${t('logs.liveOn')} ${t('logs.count', { n: count })}`; };
    };
    live.addEventListener('change', () => filters.requestSubmit());
    page.append(pageHead(t('logs.title')), card(null, filters, { class: 'filters-card' }),
      card(null, [
        h('div', { class: 'toolbar' }, status),
        h('div', { class: 'table-wrap' }, h('table', { class: 'table table-logs', 'data-testid': 'logs-results' },
          h('thead', null, h('tr', null, [t('common.time'), t('common.level'), t('logs.demo'), t('logs.where'), t('logs.pod'), t('common.message')].map((x) => h('th', null, x)))),
          tbody)),
        h('div', { class: 'pager' }, more),
      ]));
    filters.requestSubmit();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Users, API tokens, audit (admin).
  // ---------------------------------------------------------------------------------------------------------
  function roleSelect(name, value, attrs = {}) {
    return select(name, ROLES.map((r) => [r, t(`role.${r}`)]), { value, ...attrs });
  }

  async function pageUsers(ctx, page) {
    const list = h('div');
    const me = state.session.user;
    const patch = async (u, body) => {
      await api('PATCH', `/users/${enc(u.id)}`, body);
      toast(t('users.saved', { name: u.username }));
      load();
    };
    const load = () => fill(list, () => api('GET', '/users'), (users) => table([
      { label: t('users.username'), cell: (u) => h('span', null, h('strong', null, u.username), u.id === me.id ? h('span', { class: 'muted small' }, ` (${t('users.you')})`) : null) },
      {
        label: t('common.role'),
        cell: (u) => {
          const s = roleSelect('role', u.role, { class: 'input input-small', 'data-testid': `user-role-${u.username}`, 'aria-label': t('common.role') });
          s.addEventListener('change', () => patch(u, { role: s.value }).catch((err) => { s.value = u.role; reportError(err); }));
          return s;
        },
      },
      { label: t('common.status'), cell: (u) => badge(u.disabled ? 'disabled' : 'active') },
      { label: t('common.created'), cell: (u) => timeEl(u.created_at) },
      { label: t('users.lastLogin'), cell: (u) => timeEl(u.last_login_at) },
      {
        label: '', class: 'row-actions',
        cell: (u) => [
          actionButton(t('users.setPassword'), async () => {
            const pw = await promptDialog({ title: t('users.newPassword', { name: u.username }), label: t('users.password'), type: 'password', name: 'password' });
            if (pw) await patch(u, { password: pw });
          }, { class: 'btn btn-small', 'data-testid': `user-password-${u.username}` }),
          actionButton(u.disabled ? t('users.enable') : t('users.disable'), () => patch(u, { disabled: !u.disabled }),
            { class: u.disabled ? 'btn btn-small' : 'btn btn-small btn-danger-ghost', 'data-testid': `user-toggle-${u.username}` }),
        ],
      },
    ], users, { rowAttrs: (u) => ({ 'data-testid': `user-row-${u.username}` }) }));
    const create = form({ 'data-testid': 'user-form' }, [
      field(t('users.username'), input('username', { required: true, autocomplete: 'off', spellcheck: 'false' }), { required: true }),
      field(t('users.password'), input('password', { type: 'password', required: true, autocomplete: 'new-password' }), { required: true }),
      field(t('common.role'), roleSelect('role', 'viewer'), { required: true }),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'user-submit' }, t('common.create'))),
    ], async (v, el) => {
      const u = await api('POST', '/users', { username: v.username, password: el.elements.password.value, role: v.role });
      el.reset();
      toast(t('users.created', { name: u.username }));
      load();
    });
    page.append(pageHead(t('nav.users')), split(card(t('users.list'), list), card(t('users.create'), create)));
    await load();
  }

  function tokenState(x) {
    if (x.revoked_at) return 'revoked';
    const exp = parseTime(x.expires_at);
    return exp && exp.getTime() < Date.now() ? 'expired' : 'active';
  }

  async function pageTokens(ctx, page) {
    const list = h('div');
    const secretSlot = h('div');
    const load = () => fill(list, () => api('GET', '/api-tokens'), (tokens) => table([
      { label: t('common.name'), cell: (x) => h('strong', null, x.name) },
      { label: t('common.role'), cell: (x) => t(`role.${x.role}`) },
      { label: t('common.status'), cell: (x) => badge(tokenState(x)) },
      { label: t('common.created'), cell: (x) => timeEl(x.created_at) },
      { label: t('tokens.expires'), cell: (x) => timeEl(x.expires_at) },
      { label: t('tokens.lastUsed'), cell: (x) => timeEl(x.last_used_at) },
      {
        label: '', class: 'row-actions',
        cell: (x) => (x.revoked_at ? null : actionButton(t('tokens.revoke'), async () => {
          if (!(await confirmDialog({ title: t('tokens.revokeTitle', { name: x.name }), body: h('p', null, t('tokens.revokeBody')), ok: t('tokens.revoke'), danger: true }))) return;
          await api('DELETE', `/api-tokens/${enc(x.id)}`);
          toast(t('tokens.revoked', { name: x.name }));
          load();
        }, { class: 'btn btn-small btn-danger-ghost', 'data-testid': `token-revoke-${x.name}` })),
      },
    ], tokens, { rowAttrs: (x) => ({ 'data-testid': `token-row-${x.name}` }) }));
    const create = form({ 'data-testid': 'token-form' }, [
      field(t('common.name'), input('name', { required: true, spellcheck: 'false', placeholder: 'ci-deployer' }), { required: true }),
      field(t('common.role'), roleSelect('role', 'viewer'), { required: true }),
      field(t('tokens.ttl'), input('ttl_days', { type: 'number', min: 1 }), { optional: true, hint: t('tokens.ttlHint') }),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'token-submit' }, t('common.create'))),
    ], async (v, el) => {
      const body = { name: v.name, role: v.role };
      if (v.ttl_days !== '') body.ttl_days = Number(v.ttl_days);
      const created = await api('POST', '/api-tokens', body);
      el.reset();
      put(secretSlot, secretPanel(t('tokens.newToken', { name: created.name }), created.token, 'new-token'));
      load();
    });
    page.append(pageHead(t('nav.tokens')), secretSlot, split(card(t('tokens.list'), list), card(t('tokens.create'), create)));
    await load();
  }

  const AUDIT_PAGE = 50;

  async function pageAudit(ctx, page, _args, query) {
    const q = Object.fromEntries(['actor', 'action', 'since', 'until'].map((k) => [k, query.get(k) || '']));
    const offset = Math.max(0, Number(query.get('offset')) || 0);
    const list = h('div', null, loadingEl());
    const filters = form({ class: 'form filters', 'data-testid': 'audit-filters' }, [
      field(t('audit.actor'), input('actor', { value: q.actor })),
      field(t('audit.action'), input('action', { value: q.action, placeholder: 'demo.create' })),
      field(t('common.since'), input('since', { type: 'datetime-local', value: rfc3339ToLocalInput(q.since) })),
      field(t('common.until'), input('until', { type: 'datetime-local', value: rfc3339ToLocalInput(q.until) })),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'audit-search' }, t('common.search')),
        button(t('common.reset'), () => setQuery({}), { class: 'btn' })),
    ], async (v) => setQuery({ actor: v.actor, action: v.action, since: localInputToRfc3339(v.since), until: localInputToRfc3339(v.until) }));
    page.append(pageHead(t('audit.title')), card(null, filters, { class: 'filters-card' }), card(null, list));
    const detail = (d) => (d == null || d === '' ? dash() : h('span', { class: 'clip mono small', title: typeof d === 'string' ? d : JSON.stringify(d) }, typeof d === 'string' ? d : JSON.stringify(d)));
    await fill(list, () => api('GET', `/audit${qs({ ...q, limit: AUDIT_PAGE, offset })}`), (res) => {
      const entries = res.entries || [];
      return [
        table([
          { label: t('common.time'), cell: (e) => h('span', { class: 'nowrap' }, timeEl(e.at, false)) },
          { label: t('audit.actor'), cell: (e) => orDash(e.actor) },
          { label: t('audit.action'), cell: (e) => h('code', null, e.action || '') },
          { label: t('audit.target'), cell: (e) => orDash(e.target) },
          { label: t('audit.ip'), cell: (e) => h('span', { class: 'mono small' }, e.ip || t('common.none')) },
          { label: t('common.status'), cell: (e) => (typeof e.status === 'number' || /^\d+$/.test(String(e.status)) ? httpStatusBadge(e.status) : badge(e.status)) },
          { label: t('audit.detail'), cell: (e) => detail(e.detail) },
        ], entries, { pageSize: AUDIT_PAGE, rowAttrs: () => ({ 'data-testid': 'audit-row' }) }),
        pagerEl({
          from: offset + 1, to: offset + entries.length, total: res.total,
          hasPrev: offset > 0, hasNext: offset + entries.length < (res.total ?? 0),
          onPrev: () => setQuery({ ...q, offset: Math.max(0, offset - AUDIT_PAGE) || undefined }),
          onNext: () => setQuery({ ...q, offset: offset + AUDIT_PAGE }),
        }),
      ];
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Boot.
  // ---------------------------------------------------------------------------------------------------------
  function normaliseLocation() {
    // Deep links such as /console/demos/<id> become #/demos/<id>.
    const rest = location.pathname.replace(/^\/console\/?/, '').replace(/\/+$/, '');
    if (!location.hash && rest && rest !== 'index.html') history.replaceState(null, '', `/console/#/${rest}`);
    if (!location.hash || location.hash === '#' || location.hash === '#/') history.replaceState(null, '', '#/overview');
  }

  async function boot() {
    applyDocumentLang();
    normaliseLocation();
    try {
      setSession(await api('GET', '/session', undefined, { allow401: true }));
      renderShell();
      route();
    } catch (err) {
      if (err.status === 401) {
        state.returnHash = location.hash;
        renderLogin();
      } else {
        document.getElementById('app').replaceChildren(h('div', { class: 'login-page' },
          h('div', { class: 'login-card' }, brand(), errorBlock(err, () => { boot(); }))));
      }
    }
  }

  window.addEventListener('hashchange', () => { if (state.session) route(); });
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
