/*
 * The outbox's ownership protocol as a model that spin checks: scripts/check-model, `make
 * test-model`, and `make test` before the Swift build. README: "The ownership protocol, checked by
 * spin".
 *
 * It lives in Tests/model, beside the Swift tests but outside every Swift target (SwiftPM builds
 * only Tests/WaitlistTests): it tests the protocol, not the code, and needs no Swift build.
 *
 * ---------------------------------------------------------------------------------------------
 * WHAT IS MODELLED
 *
 * NS senders (processes: `serve`'s worker, `open`, `send`) with NL lanes each deliver NM queued
 * messages through one relay, sharing one database. A sender is one Sender process (its run:
 * OutboxSender.runPeriods / nextStep / work / endPeriod, and its renewal task,
 * OutboxSender.renew) and NL Lane processes (OutboxSender.runLane / deliver / record, with
 * WorkQueue.next / claim and LaneRecords). A lane takes each message through these steps, those
 * of the two-phase mail session (MailSession.begin, then finish or abandon):
 *
 *   claim    WorkQueue.next -> WorkQueue.claim -> AppDatabase.claimDue (checkSendingRole first)
 *   begin    everything up to the final dot: MailSession.begin (SMTPConnection.begin writes the
 *            envelope and data[..<endStart])
 *   check    the lane's ownership check, a plain step of OutboxSender.deliver between begin and
 *            finish: LaneRecords.settle (the lane's previous record is written) and
 *            HeldRole.mayFinish (the lease held in memory has more than a quarter left)
 *   finish   the final dot: the relay accepts. MailSession.finish (SMTPConnection.finish)
 *   abandon  the check failed: nothing reaches the relay. MailSession.abandon cuts the
 *            connection, and OutboxSender.deliver calls WorkQueue.abandon (or record(failure:)
 *            after a held-back record)
 *   record   GroupCommit -> AppDatabase.recordSent: a row in outbox_sent, with no role check (what
 *            the relay accepted is recorded whoever holds the role). Claims fold these rows into
 *            the outbox (applySentRecords); here a recorded message simply is no longer due
 *
 * The sending role: take (OutboxSender.nextStep -> AppDatabase.takeSendingRole, then the
 * HeldRole), renew (OutboxSender.renew -> AppDatabase.renewSendingRole -> HeldRole.renewed, or
 * HeldRole.lose), release (OutboxSender.endPeriod -> AppDatabase.releaseSendingRole), and the
 * lease's expiry (sendingRoleHolder and checkSendingRole compare expiresAt with now).
 *
 * Time. There is one clock, and every time is kept relative to it: `roleLeft` is the database
 * lease's expiresAt - now, `memLeft[s]` is sender s's HeldRole deadline - now, both counted in
 * ticks of the Clock process and never below 0 (0: run out). A lease is L = 4 ticks, so a quarter
 * of it, what mayFinish wants left, is Q = 1 tick. The Clock may tick between any two steps, so
 * every wait may last as long as it likes: a slow relay, a rate slot, a pause after failures, a
 * thread that does not get scheduled, a renewal that does not get through. A sender knows only
 * what it saw. While it stands still its memLeft runs down with the clock, but nothing tells it
 * that the database changed, so after a freeze it acts on a stale belief until its next check or
 * renewal.
 *
 * The timing assumption, which the ownership check relies on: a running sender gets from a passed
 * check through its finish to its record in less than a quarter of the lease. (The record is
 * written by the group commit's thread within SQLite's busy timeout, 3 s, or it fails.) In the
 * model at most one tick may pass inside a running lane's window (`late`). More time passes there
 * only when the sender freezes.
 *
 * Freeze. A sender may freeze (SIGSTOP, a paused machine) inside a lane's window, just after the
 * check or just after the finish. All its processes then stop (`provided`) while time goes on,
 * until Faults lets it continue, with the beliefs it had. Freezing anywhere else is already among
 * the behaviours: any step of any process may wait any number of ticks while the others run (spin
 * assumes no fairness), and from outside a stopped process looks just like a slow one.
 *
 * Crash. Faults may kill a sender between any two steps, at most MAXCRASH of them (fewer than NS,
 * so one survives). Its processes stop for good (`provided`) and its memory is gone (zeroed). The
 * database keeps what was committed: a role the sender held runs out by itself.
 *
 * A failed record (recordSent throws: a full disk, the busy timeout) is a third kind of event, at
 * most MAXRECFAIL times. The message stays queued although the relay has it, LaneRecords holds back
 * the lane's next message (it is not sent), and a later period sends the first one again.
 *
 * Faults are bounded per run (MAXFREEZE, MAXCRASH, MAXRECFAIL), and scripts/check-model runs
 * several configurations. Each run of the model is one possible history: spin tries every order of
 * every step of every process, and every placement of the faults.
 *
 * ---------------------------------------------------------------------------------------------
 * WHAT IS ABSTRACTED AWAY
 *
 * - Rendering and tokens.
 * - The relay's refusals and the retry schedule: a message put off for a retry counts as due at
 *   once.
 * - Pacing (DeliveryGovernor): it only adds waits, and the clock covers those.
 * - `continuous` mode: only `drain` is modelled. `continuous` is the same protocol without the end.
 * - Pipelining: the next message's envelope goes out after this one's end, but nothing of it is
 *   accepted before its own end, so it is part of that message's begin.
 * - Claim batches and claims ahead: a claim takes one message. A batch only keeps more claimed
 *   messages in memory, and a single held message may already wait as long as it likes.
 * - WorkQueue.giveBackUnsent / AppDatabase.releaseClaims: they change attempts and tokens, not
 *   what is due. A claim leaves its row queued and due, as claimDue does. Only the role keeps
 *   another process off a claimed row; within a process, WorkQueue's inHand does.
 * - nextStep's two reads: hasDueMail and takeSendingRole are one step here. A period that finds
 *   nothing to claim changes nothing.
 * - The renewal's clock reading before its write: renew reads `started`, then writes started + L
 *   to the database and to memory alike. Here that is one step. An earlier reading would only give
 *   a shorter lease, the same in both places.
 * - The group commit's thread: its write is the lane's record step, which comes before the lane's
 *   next check, as LaneRecords.settle makes it.
 *
 * The claim's clock reading: claimDue compares expiresAt with a `now` read before its write, and
 * next() asked mayFinish before that. After a freeze the reading may be old, so in the code the
 * expiry test passes whenever the owner is still this sender. The model therefore lets a claim
 * through on the owner alone, at any time in WorkQueue.next. That is a superset of what the code
 * does, so a pass is sound. -DCLAIM_READS_NOW compares with the current time instead, a subset of
 * the code's behaviour, so an error found with it is a real run.
 *
 * ---------------------------------------------------------------------------------------------
 * THE PROPERTIES
 *
 * (a) Nothing is lost. In every run that ends (every surviving sender finished its drain, and one
 *     at least survives) every message is recorded sent, and the relay accepted it at least once.
 *     Spin's own rule for end states does not fit, because a crashed or frozen process stays
 *     where it stopped. So the verifier runs with -E, and init checks the end itself. It also
 *     fires when nothing at all can move any more (spin's `timeout`), so a survivor stuck for
 *     good fails it too.
 * (b) A message reaches the relay twice only after a fault in a lane's window. The ghost `allow[m]`
 *     counts the events that may repeat message m:
 *     - the sender froze while a lane had m in its window;
 *     - the sender crashed while a lane had m in its window;
 *     - the record of m failed.
 *     Every acceptance by the relay asserts accepted[m] <= 1 + allow[m]. A lane's window runs from
 *     a passed check to its record, and the next check waits for that record, so a lane has at
 *     most one message in its window: each event allows at most one repetition per lane.
 *
 * ---------------------------------------------------------------------------------------------
 * CHECKING THE CHECK
 *
 * -DNO_OWNERSHIP_CHECK removes HeldRole.mayFinish from between begin and finish (the check is then
 * the settle alone). Spin must then find a duplicate that no event allows; scripts/check-model
 * requires it to.
 *
 * -DTAKEN_AT_LATER models OutboxSender.nextStep as it was before spin found this: the database's
 * lease counted from the clock reading passed to takeSendingRole, but HeldRole(takenAt: now())
 * took a second reading after the commit, so the deadline in memory could outlast the one in the
 * database. With -DCLAIM_READS_NOW and no faults at all, spin finds a duplicate (README). The
 * model, like nextStep now, takes both deadlines from one reading.
 */

#ifndef NS
#define NS 2            /* senders (processes): 2 or 3 */
#endif
#ifndef NL
#define NL 2            /* lanes of each sender: 1 or 2 */
#endif
#ifndef NM
#define NM 3            /* queued messages: 2 or 3 */
#endif
#ifndef L
#define L 4             /* a lease, in ticks */
#endif
#ifndef Q
#define Q 1             /* what HeldRole.mayFinish wants left: a quarter of the lease */
#endif
#ifndef MAXFREEZE
#define MAXFREEZE 1     /* freezes inside a window, per run */
#endif
#ifndef MAXCRASH
#define MAXCRASH 1      /* crashes per run */
#endif
#ifndef MAXRECFAIL
#define MAXRECFAIL 1    /* failed records per run */
#endif

#if MAXCRASH >= NS
#error "MAXCRASH must leave one sender alive"
#endif
#if NS > 3 || NL > 2 || NM > 3
#error "up to 3 senders, 2 lanes each, 3 messages"
#endif

#define ALL ((1 << NM) - 1)
#define NLANES (NS * NL)
#define bitOf(m) (1 << (m))
#define lowest(set) (((set) & 1) -> 0 : (((set) & 2) -> 1 : 2))

/* The database: the sending_role row (owner 0: no row; else sender owner - 1) and outbox_sent. */
byte owner;
byte roleLeft;          /* expiresAt - now; 0 once run out */
byte recorded;          /* the messages recorded sent (the others are queued and due) */

/* The relay: how many times it accepted each message. */
byte accepted[NM];

/* Each sender's memory. HeldRole: a lost role is a deadline in the past. No renewal brings it
   back, since renewSendingRole then finds another owner or none. And WorkQueue's inHand. */
#define WAITING 0       /* in nextStep */
#define TAKEN 1         /* took the role, no HeldRole yet (TAKEN_AT_LATER only) */
#define WORKING 2       /* in work: the lanes and the renewal run */
byte step[NS];
byte memLeft[NS];       /* HeldRole deadline - now; 0: run out, lost, or no period */
byte inHand[NS];
bit done[NS];           /* its drain ended: nothing was due */
bit crashed[NS];
bit frozen[NS];

/* Each lane's memory (lane s * NL + l): where it is, what it holds, LaneRecords.heldBack. */
#define IDLE 0          /* not running (between periods) */
#define NEXT 1          /* in WorkQueue.next */
#define BEGUN 2         /* claimed and begun: sent up to its final dot */
#define SENT 3          /* finished: the relay accepted it; not recorded yet */
#define CHECKED 4       /* checked, and frozen before its finish */
byte phase[NLANES];
byte msg[NLANES];       /* the message in hand (BEGUN, SENT, CHECKED) */
bit heldBack[NLANES];   /* the previous record failed: the next message is held back */

/* Ghosts. */
byte allow[NM];         /* the events that may repeat message m, see (b) */
bit late[NLANES];       /* a tick passed in this running lane's window: no second one may */
byte freezes;
byte crashes;
byte recordFailures;

/* A lane's window: from a passed check to its record. */
#define inWindow(i) (phase[i] >= SENT)
#define running(i) (inWindow(i) && !frozen[(i) / NL])
#define holdsClock(i) (running(i) && late[i])
#define mayFinish(s) (memLeft[s] > Q)

#if NS > 2
#define allEnded ((done[0] || crashed[0]) && (done[1] || crashed[1]) && (done[2] || crashed[2]))
#define anyMemLeft (memLeft[0] + memLeft[1] + memLeft[2] > 0)
#else
#define allEnded ((done[0] || crashed[0]) && (done[1] || crashed[1]))
#define anyMemLeft (memLeft[0] + memLeft[1] > 0)
#endif
#if NLANES > 4
#define clockHeld (holdsClock(0) || holdsClock(1) || holdsClock(2) || holdsClock(3) || holdsClock(4) || holdsClock(5))
#elif NLANES > 3
#define clockHeld (holdsClock(0) || holdsClock(1) || holdsClock(2) || holdsClock(3))
#elif NLANES > 2
#define clockHeld (holdsClock(0) || holdsClock(1) || holdsClock(2))
#else
#define clockHeld (holdsClock(0) || holdsClock(1))
#endif
#if NL > 1
#define lanesIdle(s) (phase[(s) * NL] == IDLE && phase[(s) * NL + 1] == IDLE)
#define startLanes(s) phase[(s) * NL] = NEXT; phase[(s) * NL + 1] = NEXT
#else
#define lanesIdle(s) (phase[s] == IDLE)
#define startLanes(s) phase[s] = NEXT
#endif

#ifdef NO_OWNERSHIP_CHECK
#define ownershipCheck(s) true
#else
#define ownershipCheck(s) mayFinish(s)
#endif

#ifdef CLAIM_READS_NOW
#define roleHeldForClaim(s) (owner == (s) + 1 && roleLeft > 0)
#else
#define roleHeldForClaim(s) (owner == (s) + 1)
#endif

/* finish: the relay accepts message mm. Property (b). */
inline finish(mm) {
    accepted[mm]++;
    printf("lane %d.%d: finish: the relay accepts message %d (%d times now; %d events allow %d)\n",
        s, l, mm, accepted[mm], allow[mm], 1 + allow[mm]);
    assert(accepted[mm] <= 1 + allow[mm])
}

/* Sender ss stops where it is (SIGSTOP) until Faults lets it go on. Each of its lanes inside its
   window is an event that may repeat that window's message. */
inline freeze(ss) {
    freezes++;
    for (k : 0 .. NL - 1) {
        if
        :: inWindow(ss * NL + k) -> allow[msg[ss * NL + k]]++
        :: else
        fi
    }
    k = 0;
    printf("sender %d freezes\n", ss);
    frozen[ss] = 1      /* last: from here on `provided` stops every process of ss */
}

/* One lane: OutboxSender.runLane in each period. Every step is one atomic action, chosen by the
   lane's phase. */
#define me (s * NL + l)
#define m msg[me]
proctype Lane(byte s; byte l) provided (!crashed[s] && !frozen[s]) {
    byte k;
    do
    /* WorkQueue.next returns nil: the role is going (HeldRole.mayFinish), and the lane ends. */
    :: atomic {
           phase[me] == NEXT && !mayFinish(s) ->
           phase[me] = IDLE; heldBack[me] = 0;
           printf("lane %d.%d: the role is going: the lane ends\n", s, l)
       }
    /* claim: WorkQueue.claim -> AppDatabase.claimDue. Its checkSendingRole throws SendingRoleLost
       unless this sender holds the role (then HeldRole.lose), and it passes over inHand. Nothing
       claimed: next() returns nil and the lane ends. Otherwise begin: the message goes out up to
       its final dot, and the relay has accepted nothing yet. (next() asked mayFinish before the
       claim, but a freeze may fall between the two, so here the claim is not tied to it.) */
    :: atomic {
           phase[me] == NEXT ->
           if
           :: !roleHeldForClaim(s) ->
               memLeft[s] = 0; phase[me] = IDLE; heldBack[me] = 0;
               printf("lane %d.%d: claim refused (SendingRoleLost): the lane ends\n", s, l)
           :: roleHeldForClaim(s) && (ALL & ~recorded & ~inHand[s]) == 0 ->
               phase[me] = IDLE; heldBack[me] = 0;
               printf("lane %d.%d: nothing to claim: the lane ends\n", s, l)
           :: roleHeldForClaim(s) && (ALL & ~recorded & ~inHand[s]) != 0 ->
               m = lowest(ALL & ~recorded & ~inHand[s]);
               inHand[s] = inHand[s] | bitOf(m);
               phase[me] = BEGUN;
               printf("lane %d.%d: claims message %d and begins it\n", s, l, m)
           fi
       }
    /* check: LaneRecords.settle, then HeldRole.mayFinish, in OutboxSender.deliver between the phases. */
    :: atomic {
           phase[me] == BEGUN ->
           if
           :: heldBack[me] ->
               /* The previous record failed, so this message is held back, not sent
                  (record(failure:) -> markFailed). It is due again. */
               printf("lane %d.%d: message %d held back (the previous record failed)\n", s, l, m);
               heldBack[me] = 0; inHand[s] = inHand[s] & ~bitOf(m); m = 0; phase[me] = NEXT
           :: !heldBack[me] && !ownershipCheck(s) ->
               /* abandon: WorkQueue.abandon. The message stays due for whoever has the role. */
               printf("lane %d.%d: check fails (%d left in memory): message %d abandoned\n", s, l, memLeft[s], m);
               inHand[s] = inHand[s] & ~bitOf(m); m = 0; phase[me] = NEXT
           :: !heldBack[me] && ownershipCheck(s) ->
               printf("lane %d.%d: check passes (%d left in memory)\n", s, l, memLeft[s]);
               if
               :: phase[me] = SENT; finish(m)
               :: freezes < MAXFREEZE -> phase[me] = SENT; finish(m); freeze(s)   /* frozen before its record */
               :: freezes < MAXFREEZE -> phase[me] = CHECKED; freeze(s)          /* frozen before its dot */
               fi
           fi
       }
    /* finish after a freeze between check and finish: the final dot goes out late. */
    :: atomic { phase[me] == CHECKED -> phase[me] = SENT; finish(m) }
    /* record: GroupCommit -> AppDatabase.recordSent (no role check), or its failure. */
    :: atomic {
           phase[me] == SENT ->
           if
           :: recorded = recorded | bitOf(m); inHand[s] = inHand[s] & ~bitOf(m);
               printf("lane %d.%d: records message %d sent\n", s, l, m)
           :: recordFailures < MAXRECFAIL ->
               /* It stays queued, and in inHand: this period does not claim it again. */
               recordFailures++; allow[m]++; heldBack[me] = 1;
               printf("lane %d.%d: the record of message %d fails (an event)\n", s, l, m)
           fi;
           m = 0; late[me] = 0; phase[me] = NEXT
       }
    od
}
#undef m
#undef me

/* One sender: OutboxSender.runPeriods in drain mode, with its renewal task (OutboxSender.renew). */
proctype Sender(byte s) provided (!crashed[s] && !frozen[s]) {
    do
    /* nextStep: AppDatabase.hasDueMail is false, so the drain is over. */
    :: atomic {
           step[s] == WAITING && recorded == ALL && !done[s] ->
           done[s] = 1; printf("sender %d: nothing due: done\n", s)
       }
    /* nextStep: AppDatabase.takeSendingRole, when the role is free, has run out, or is this
       sender's. (While another sender holds it, nextStep waits and looks again: no step, and
       nothing changes.) Then HeldRole, and work: the lanes start, with the renewal beside them. */
    :: atomic {
           step[s] == WAITING && recorded != ALL && (owner == 0 || owner == s + 1 || roleLeft == 0) ->
           owner = s + 1; roleLeft = L;
           printf("sender %d takes the role (lease %d)\n", s, L);
#ifdef TAKEN_AT_LATER
           step[s] = TAKEN
#else
           memLeft[s] = L;          /* HeldRole's deadline from the reading the lease counts from */
           startLanes(s); step[s] = WORKING
#endif
       }
#ifdef TAKEN_AT_LATER
    /* Before the fix: HeldRole(takenAt: now()), from a second clock reading taken after the commit. */
    :: atomic {
           step[s] == TAKEN ->
           memLeft[s] = L; startLanes(s); step[s] = WORKING;
           printf("sender %d: HeldRole from a later reading: %d left in memory, %d in the database\n", s, L, roleLeft)
       }
#endif
    /* renew: renewSendingRole (UPDATE ... WHERE owner = ?: a lease that ran out with nobody
       taking over is still this sender's), then HeldRole.renewed; otherwise HeldRole.lose. */
    :: atomic {
           step[s] == WORKING && !lanesIdle(s) ->
           if
           :: owner == s + 1 -> roleLeft = L; memLeft[s] = L; printf("sender %d renews\n", s)
           :: else -> memLeft[s] = 0; printf("sender %d: the renewal finds another owner: role lost\n", s)
           fi
       }
    /* The lanes are done: HeldRole.end, then endPeriod (giveBackUnsent, applySentRecords,
       releaseSendingRole). */
    :: atomic {
           step[s] == WORKING && lanesIdle(s) ->
           memLeft[s] = 0; inHand[s] = 0; step[s] = WAITING;
           printf("sender %d: period over; releases the role\n", s);
           if :: owner == s + 1 -> owner = 0; roleLeft = 0 :: else fi
       }
    od
}

/* The clock: each tick runs every lease down by one. It stops when nothing counts down, and it
   waits while a running lane that already saw one tick is inside its window (the timing
   assumption). */
active proctype Clock() {
    byte i;
    do
    :: atomic {
           (roleLeft > 0 || anyMemLeft) && !clockHeld ->
           for (i : 0 .. NLANES - 1) { if :: running(i) -> late[i] = 1 :: else fi }
           if :: roleLeft > 0 -> roleLeft-- :: else fi;
           for (i : 0 .. NS - 1) {
               /* A deadline at Q or less only ever says no, so 0 stands for all of them. */
               if :: memLeft[i] > Q + 1 -> memLeft[i]-- :: else -> memLeft[i] = 0 fi
           }
           i = 0;
           printf("tick: the database's lease has %d left\n", roleLeft)
       }
    od
}

/* A crash of sender ss: its processes stop for good (their `provided`) and its memory is gone.
   Each of its lanes inside its window is an event that may repeat that window's message. */
inline crash(ss) {
    printf("sender %d crashes\n", ss);
    crashed[ss] = 1;
    crashes++;
    for (k : 0 .. NL - 1) {
        if
        :: inWindow(ss * NL + k) -> allow[msg[ss * NL + k]]++
        :: else
        fi;
        phase[ss * NL + k] = IDLE; late[ss * NL + k] = 0; msg[ss * NL + k] = 0; heldBack[ss * NL + k] = 0
    }
    k = 0;
    frozen[ss] = 0; memLeft[ss] = 0; inHand[ss] = 0; step[ss] = WAITING
}

/* Crashes at any step, and the end of a freeze (SIGCONT) after any time. */
active proctype Faults() {
    byte k;
    do
    :: atomic { frozen[0] -> frozen[0] = 0; printf("sender 0 goes on (SIGCONT)\n") }
    :: atomic { frozen[1] -> frozen[1] = 0; printf("sender 1 goes on (SIGCONT)\n") }
    :: atomic { crashes < MAXCRASH && !crashed[0] && !done[0] -> crash(0) }
    :: atomic { crashes < MAXCRASH && !crashed[1] && !done[1] -> crash(1) }
#if NS > 2
    :: atomic { frozen[2] -> frozen[2] = 0; printf("sender 2 goes on (SIGCONT)\n") }
    :: atomic { crashes < MAXCRASH && !crashed[2] && !done[2] -> crash(2) }
#endif
    od
}

init {
    byte s, l;
    atomic {
        for (s : 0 .. NS - 1) {
            run Sender(s);
            for (l : 0 .. NL - 1) { run Lane(s, l) }
        }
        s = 0; l = 0
    }
    /* (a), once every sender has finished its drain or crashed (one at least survives), or
       once nothing at all can move any more (spin's timeout), which must be the same end. */
    if
    :: allEnded
    :: timeout
    fi;
    assert(allEnded);
    assert(recorded == ALL);
    for (s : 0 .. NM - 1) { assert(accepted[s] >= 1) }
    s = 0
}
