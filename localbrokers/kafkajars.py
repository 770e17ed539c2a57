"""The pinned Apache Kafka release's broker jars: fetched from Maven Central once, then cached.

Apache Kafka publishes its broker as `org.apache.kafka:kafka_2.13` on Maven Central.
Maven resolves it (with its runtime dependencies, and Log4j's SLF4J binding so the
broker's log is written) into a Maven repository inside the cache folder and writes
the resulting classpath to a file there. Later runs read that file and need neither
Maven nor the network; only Java (17 or later, as Kafka 4 requires).

The cache folder is `$FUNNEL_TEST_KAFKA_CACHE`, else `$XDG_CACHE_HOME/funnel-processor/kafka`,
else `~/.cache/funnel-processor/kafka`. Deleting it (or pointing the variable at an
empty folder) makes the next run fetch everything again. Concurrent runs take a file
lock, so only one of them fetches.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Why this release: see the README ("The local Apache Kafka").
KAFKA_RELEASE = "4.4.0"
SCALA = "2.13"
LOG4J = "2.25.5"  # the Log4j 2 that this Kafka release's kafka-server depends on; its SLF4J 1.x binding
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
CACHE_VARIABLE = "FUNNEL_TEST_KAFKA_CACHE"
MIN_JAVA = 17
FETCH_TIMEOUT_S = 600.0

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.funnel-processor</groupId>
  <artifactId>kafka-broker-{release}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{release}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


class NoKafka(Exception):
    """Apache Kafka cannot run here (no Java, too old a Java, no Maven to fetch it, a failed fetch)."""


@dataclass(frozen=True)
class KafkaJars:
    release: str
    java: Path
    classpath: str  # ':'-joined jar paths

    @property
    def description(self) -> str:
        return f"Apache Kafka {self.release}"


def cache_root() -> Path:
    chosen = os.environ.get(CACHE_VARIABLE, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "funnel-processor" / "kafka"


def java_binary() -> Path:
    """The `java` of $JAVA_HOME, else the one on PATH, if it is Java 17 or later; else NoKafka."""
    home = os.environ.get("JAVA_HOME", "").strip()
    found = Path(home) / "bin" / "java" if home and (Path(home) / "bin" / "java").is_file() else None
    if found is None:
        on_path = shutil.which("java")
        if on_path is None:
            raise NoKafka("Java is not installed (no `java` on PATH or in $JAVA_HOME): Apache Kafka needs Java 17+")
        found = Path(on_path)
    version = subprocess.run([str(found), "-version"], capture_output=True, text=True, timeout=30, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version.stderr + version.stdout)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0_..." is Java 8
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise NoKafka(f"{found} is Java {major or '(unknown version)'}: Apache Kafka 4 needs Java {MIN_JAVA}+")
    return found


def release_dir(release: str = KAFKA_RELEASE, cache: Path | None = None) -> Path:
    return (cache or cache_root()) / f"kafka_{SCALA}-{release}"


def cached_classpath(release: str = KAFKA_RELEASE, cache: Path | None = None) -> str | None:
    """The classpath of a complete earlier fetch, or None (nothing cached, or a jar gone)."""
    listing = release_dir(release, cache) / "classpath.txt"
    if not listing.is_file():
        return None
    classpath = listing.read_text().strip()
    jars = classpath.split(os.pathsep)
    if not jars or not all(Path(jar).is_file() for jar in jars):
        return None
    return classpath


def unavailable(release: str = KAFKA_RELEASE, cache: Path | None = None) -> str | None:
    """Why the local Apache Kafka cannot run here, or None when it can (checked without fetching)."""
    try:
        java_binary()
    except NoKafka as missing:
        return str(missing)
    if cached_classpath(release, cache) is None and shutil.which("mvn") is None:
        return f"Maven is not installed (no `mvn` on PATH) to fetch Apache Kafka {release} from Maven Central"
    return None


def kafka_jars(release: str = KAFKA_RELEASE, cache: Path | None = None, *, say: bool = True) -> KafkaJars:
    """The release's jars, fetched with Maven on first use; NoKafka with the reason if impossible."""
    java = java_binary()
    classpath = cached_classpath(release, cache)
    if classpath is not None:
        return KafkaJars(release, java, classpath)
    root = cache or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".fetch.lock"):
        classpath = cached_classpath(release, cache)  # fetched by another process while we waited
        if classpath is None:
            if say:
                print(f"fetching Apache Kafka {release} from Maven Central into {root} (once)", flush=True)
            classpath = _fetch(release, root)
    return KafkaJars(release, java, classpath)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch(release: str, root: Path) -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise NoKafka(f"Maven is not installed (no `mvn` on PATH) to fetch Apache Kafka {release} from Maven Central")
    target = release_dir(release, root)
    target.mkdir(parents=True, exist_ok=True)
    (target / "pom.xml").write_text(_POM.format(release=release, scala=SCALA, log4j=LOG4J))
    with tempfile.NamedTemporaryFile("r", dir=target, suffix=".classpath") as listing:
        command = [mvn, "-q", "-B", f"-Dmaven.repo.local={root / 'maven-repository'}", "-f", str(target / "pom.xml")]
        command += [f"{DEPENDENCY_PLUGIN}:build-classpath", "-Dmdep.includeScope=runtime"]
        command += [f"-Dmdep.outputFile={listing.name}"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise NoKafka(f"Maven did not fetch Apache Kafka {release} within {FETCH_TIMEOUT_S:g} s") from None
        if done.returncode != 0:
            raise NoKafka(
                f"Maven could not fetch Apache Kafka {release} (exit {done.returncode}):\n"
                + (done.stdout + done.stderr)[-3000:]
            )
        classpath = Path(listing.name).read_text().strip()
    if not classpath:
        raise NoKafka(f"Maven fetched Apache Kafka {release} but listed no jars")
    (target / "classpath.txt").write_text(classpath + "\n")  # written last: marks a complete fetch
    return classpath


def main() -> int:
    """`python -m localbrokers.kafkajars`: fetch the pinned release now (make test does, before pytest).

    Where Java or Maven is missing it says so and exits 0 (the suite then skips the Kafka lane),
    except under CI (CI set), where the Kafka lane must run: exit 1.
    """
    try:
        jars = kafka_jars()
    except NoKafka as missing:
        if os.environ.get("CI"):
            print(f"localbrokers: {missing} (CI must run the Kafka lane: install Java 17+ and Maven)")
            return 1
        print(f"localbrokers: no local Apache Kafka ({missing}); the tests' Kafka lane will be skipped")
        return 0
    print(f"localbrokers: {jars.description} ready in {release_dir(jars.release)} (Java: {jars.java})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
