"""The leader's work: plan, charge the solve time, order migrations, collect results.

Once the partition has ``min_partition_size`` members the leader plans over the members'
snapshots (its own refreshed). A plan found → state ``computing`` (ComputingAndApplying):
the leader waits ``planner.cost_s(hosts, vms)`` on the clock, sending keepalives, then
orders every migration of the plan at once (plans are executable all at once) to the
migrations' source nodes, and releases the members the plan involves in no migration
(they are free at once; keepalives go to the members it binds). No plan → the solve time
is charged all the same and the partition grows.

Orders are idempotent per (partition, vm): a source migrates a VM at most once per
partition whatever is lost or repeated, and only VMs it runs, only while it is a member.
The leader re-sends an order until acknowledged (``request_retries`` extra attempts, then
the source counts as crashed: removed from the members and marked dead in the overlay) and
every ``result_poll_s`` while it runs (a lost result is then re-sent from the source's
cache). When every order has ended, or after ``apply_timeout_s``, it dissolves the
partition, ``solved`` when every migration succeeded.
"""

from __future__ import annotations

import dataclasses

from dvms import events
from dvms.events import emit_event
from dvms.hypervisor import MigrationResult
from dvms.protocol.base import ORDER_CACHE_SIZE, RELEASED, Handlers, ProtocolBase
from dvms.protocol.messages import (
    ApplyTimeout,
    DissolvePartition,
    KeepAlive,
    KeepAliveTick,
    MigrateOrder,
    MigrationReport,
    OrderAck,
    OrderTimer,
    SolveDone,
)
from dvms.protocol.partition import COMPUTING, GROWING, Order, planning_problem, snapshot

__all__ = ["Applying"]


class Applying(ProtocolBase):
    """The leader's planning and plan application, and the sources' side of orders."""

    def handlers(self) -> Handlers:
        return {
            **super().handlers(),
            KeepAlive: self.on_keepalive,
            KeepAliveTick: self.on_keepalive_tick,
            SolveDone: self.on_solve_done,
            MigrateOrder: self.on_migrate_order,
            OrderAck: self.on_order_ack,
            OrderTimer: self.on_order_timer,
            MigrationReport: self.on_report,
            MigrationResult: self.on_migration_result,
            ApplyTimeout: self.on_apply_timeout,
        }

    # ----- planning --------------------------------------------------------------------
    def plan_or_grow(self) -> None:
        """Leader of a growing partition: plan if it is large enough, else grow it."""
        part, lead = self.part, self.lead
        assert part is not None and lead is not None
        if part.size < self.config.min_partition_size:
            self.grow()
            return
        lead.snapshots[self.node] = snapshot(self.node, self.hv, self.now(), self.site)
        hosts, vms = planning_problem(part.members, lead.snapshots)
        plan = self.planner.plan(hosts, vms)
        cost = float(self.planner.cost_s(len(hosts), len(vms)))
        if plan is not None and len(plan) == 0:
            self.dissolve("no-violation", False)
            return
        if plan is None:
            emit_event(
                self.emit,
                events.partition_fail(
                    self.now(), self.node, partition=part.id, size=part.size, reason="no-plan"
                ),
            )
            self.schedule(cost, SolveDone(partition=part.id, version=part.version, found=False))
            return
        lead.plan = plan
        part.view = dataclasses.replace(part.view, version=part.version + 1, state=COMPUTING)
        part.last_update = self.now()
        self.notify()
        emit_event(
            self.emit,
            events.partition_solve(
                self.now(),
                self.node,
                partition=part.id,
                size=part.size,
                migrations=len(plan),
                compute_s=cost,
            ),
        )
        lead.keepalive = self.schedule(self.config.keepalive_period_s, KeepAliveTick(part.id))
        self.schedule(cost, SolveDone(partition=part.id, version=part.version, found=True))

    def on_solve_done(self, message: SolveDone) -> None:
        part, lead = self.part, self.lead
        if (
            part is None
            or lead is None
            or part.id != message.partition
            or part.version != message.version
            or part.leader != self.node
        ):
            return
        if not message.found:
            if part.state == GROWING:
                self.grow()
            return
        assert lead.plan is not None
        for migration in lead.plan.migrations:
            lead.orders[migration.vm] = Order(
                source=migration.source, destination=migration.destination
            )
        self.release_uninvolved()
        lead.apply_deadline = self.schedule(self.config.apply_timeout_s, ApplyTimeout(part.id))
        for vm in list(lead.orders):
            self.send_order(vm)

    def release_uninvolved(self) -> None:
        """Leader applying a plan: the members it involves in no migration (neither source
        nor destination; the leader and the initiator stay) are free again at once
        (``DissolvePartition`` reason ``released``). They hold none of the plan's VMs, so
        keeping them booked only costs keepalives while the migrations run. The view keeps
        every member (the partition's size is the one it grew to)."""
        part, lead = self.part, self.lead
        assert part is not None and lead is not None
        involved = {self.node, part.initiator}
        for order in lead.orders.values():
            involved.add(order.source)
            involved.add(order.destination)
        released = [m for m in part.members if m not in involved]
        if released:
            lead.released = frozenset(released)
            message = DissolvePartition(partition=part.id, reason=RELEASED, solved=False)
            self.send_members(released, message)

    def on_keepalive_tick(self, message: KeepAliveTick) -> None:
        part, lead = self.part, self.lead
        if part is None or lead is None or part.id != message.partition or part.state != COMPUTING:
            return
        self.send_members(lead.bound(part.members), KeepAlive(part.id, part.version))
        part.last_update = self.now()
        lead.keepalive = self.schedule(self.config.keepalive_period_s, message)

    def on_keepalive(self, message: KeepAlive) -> None:
        part = self.part
        if part is not None and part.id == message.partition:
            part.last_update = self.now()

    # ----- orders (leader side) --------------------------------------------------------
    def send_order(self, vm: str) -> None:
        part, lead = self.part, self.lead
        assert part is not None and lead is not None
        order = lead.orders[vm]
        order.round += 1
        order.acked = False
        command = MigrateOrder(
            partition=part.id,
            vm=vm,
            source=order.source,
            destination=order.destination,
            leader=self.node,
        )
        self.send(self.to(order.source), command)
        timer = OrderTimer(partition=part.id, vm=vm, round=order.round)
        self.schedule(self.config.request_timeout_s, timer)

    def leader_order(self, partition: str, vm: str) -> Order | None:
        part, lead = self.part, self.lead
        if part is None or lead is None or part.id != partition or part.state != COMPUTING:
            return None
        order = lead.orders.get(vm)
        return None if order is None or order.done else order

    def on_order_ack(self, message: OrderAck) -> None:
        order = self.leader_order(message.partition, message.vm)
        if order is None:
            return
        order.acked = True
        order.tries = 0
        order.round += 1
        timer = OrderTimer(partition=message.partition, vm=message.vm, round=order.round)
        self.schedule(self.config.result_poll_s, timer)

    def on_order_timer(self, message: OrderTimer) -> None:
        order = self.leader_order(message.partition, message.vm)
        if order is None or order.round != message.round:
            return
        if not order.acked:
            order.tries += 1
            if order.tries > self.config.request_retries:
                self.source_lost(message.vm, order)
                return
        self.send_order(message.vm)

    def source_lost(self, vm: str, order: Order) -> None:
        """The source never answered: count it as crashed and the migration as failed."""
        part = self.part
        assert part is not None
        order.done, order.ok, order.reason = True, False, "source-unreachable"
        self.overlay.mark_dead(order.source)
        if order.source in part.members and order.source != self.node:
            members = tuple(m for m in part.members if m != order.source)
            part.view = dataclasses.replace(part.view, members=members)
        emit_event(
            self.emit,
            events.partition_fail(
                self.now(), self.node, partition=part.id, size=part.size, reason="member-lost"
            ),
        )
        self.finish_if_done()

    def on_report(self, message: MigrationReport) -> None:
        order = self.leader_order(message.partition, message.vm)
        if order is None:
            return
        order.done, order.ok, order.reason = True, message.ok, message.reason
        self.finish_if_done()

    def finish_if_done(self) -> None:
        lead = self.lead
        assert lead is not None
        if all(order.done for order in lead.orders.values()):
            solved = all(order.ok for order in lead.orders.values())
            if not solved:
                part = self.part
                assert part is not None
                emit_event(
                    self.emit,
                    events.partition_fail(
                        self.now(),
                        self.node,
                        partition=part.id,
                        size=part.size,
                        reason="migration-failed",
                    ),
                )
            self.dissolve("solved" if solved else "migration-failed", solved)

    def on_apply_timeout(self, message: ApplyTimeout) -> None:
        part = self.part
        if part is None or self.lead is None or part.id != message.partition:
            return
        if part.state == COMPUTING:
            emit_event(
                self.emit,
                events.partition_fail(
                    self.now(), self.node, partition=part.id, size=part.size, reason="apply-timeout"
                ),
            )
            self.dissolve("apply-timeout", False)

    # ----- orders (source side) --------------------------------------------------------
    def on_migrate_order(self, message: MigrateOrder) -> None:
        key = (message.partition, message.vm)
        if key in self.order_cache:
            cached = self.order_cache[key]
            reply: object = OrderAck(partition=message.partition, vm=message.vm)
            if cached is not None:
                reply = cached
            self.send(self.to(message.leader), reply)
            return
        part = self.part
        reason = ""
        if part is None or part.id != message.partition:
            reason = "not-member"
        else:
            here = [vm for vm in self.hv.vms() if vm.vm == message.vm]
            if not here or here[0].migrating:
                reason = "vm-not-here"
        if reason:
            report = MigrationReport(
                partition=message.partition,
                vm=message.vm,
                source=self.node,
                destination=message.destination,
                ok=False,
                reason=reason,
            )
            self.remember(key, report)
            self.send(self.to(message.leader), report)
            return
        self.remember(key, None)
        self.inflight[message.vm] = (message.partition, message.leader, message.destination)
        self.hv.migrate(message.vm, message.destination, self.address)
        self.send(self.to(message.leader), OrderAck(partition=message.partition, vm=message.vm))

    def remember(self, key: tuple[str, str], report: MigrationReport | None) -> None:
        self.order_cache[key] = report
        self.order_cache.move_to_end(key)
        while len(self.order_cache) > ORDER_CACHE_SIZE:
            self.order_cache.popitem(last=False)

    def on_migration_result(self, message: MigrationResult) -> None:
        """From the hypervisor: relay the result to the leader that ordered it."""
        info = self.inflight.pop(message.vm, None)
        if info is not None:
            partition, leader, destination = info
            report = MigrationReport(
                partition=partition,
                vm=message.vm,
                source=self.node,
                destination=destination,
                ok=message.ok,
                reason=message.reason,
            )
            self.remember((partition, message.vm), report)
            self.send(self.to(leader), report)
        if self.part is None:
            self.maybe_start()
